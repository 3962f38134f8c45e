// The web chat page: sends what the person types or clicks over the WebSocket and draws the messages the server
// sends back. All rendering uses textContent, never innerHTML: prompts are user text. Who the person is lives in an
// HttpOnly cookie the server set with this page; the page never sees or sends an id of its own.

const RECONNECT_MAX_MS = 10_000;
const ADMIN_SESSION_LINE = /^\/admin\s+(login|logout)\b\s*(.*)$/;

const list = document.getElementById('messages');
const statusLine = document.getElementById('status');
const form = document.getElementById('composer');
const line = document.getElementById('line');

let socket;
/** Shown once the socket reconnected after an admin sign-in (the transcript that follows redraws the list). */
let noteAfterReconnect;
let reconnectDelayMs = 500;

function setStatus(state, text) {
  statusLine.dataset.state = state;
  statusLine.textContent = text;
}

function sendToServer(message) {
  if (socket?.readyState !== WebSocket.OPEN) {
    setStatus('closed', 'not connected — retrying…');
    return false;
  }
  socket.send(JSON.stringify(message));
  return true;
}

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

/** Keeps the same <img> elements when only their source changes, so a forming preview updates in place. */
function drawImages(container, images) {
  if (container.children.length !== images.length) {
    container.replaceChildren(
      ...images.map(() => {
        const link = element('a');
        link.target = '_blank';
        link.rel = 'noopener';
        link.append(element('img'));
        return link;
      }),
    );
  }
  images.forEach((image, index) => {
    const link = container.children[index];
    const img = link.querySelector('img');
    if (img.getAttribute('src') !== image.url) img.setAttribute('src', image.url);
    link.href = image.url;
    img.alt = image.fileName.startsWith('preview') ? 'Preview of the image being made' : `Generated image ${image.fileName}`;
  });
  container.hidden = images.length === 0;
}

function drawButtons(container, message) {
  container.replaceChildren(
    ...message.buttonRows.map((row) => {
      const rowNode = element('div', 'buttons');
      rowNode.setAttribute('role', 'group');
      for (const button of row) {
        const node = element('button', button.style, button.emoji ? `${button.emoji} ${button.label}` : button.label);
        node.type = 'button';
        node.setAttribute('aria-label', button.label);
        node.addEventListener('click', () => sendToServer({ type: 'button', messageId: message.id, customId: button.customId }));
        rowNode.append(node);
      }
      return rowNode;
    }),
  );
}

function drawReactions(container, message) {
  container.replaceChildren(
    ...message.reactions.map((reaction) => {
      const node = element('button', 'chip', reaction.emoji);
      node.type = 'button';
      node.title = reaction.label;
      node.setAttribute('aria-label', `React ${reaction.emoji}: ${reaction.label}`);
      node.addEventListener('click', () => sendToServer({ type: 'reaction', messageId: message.id, emoji: reaction.emoji }));
      return node;
    }),
  );
  container.hidden = message.reactions.length === 0;
}

function upsert(message) {
  let item = document.getElementById(`m-${message.id}`);
  if (!item) {
    item = element('li');
    item.id = `m-${message.id}`;
    item.append(element('div', 'author'), element('div', 'text'), element('div', 'images'), element('div', 'rows'), element('div', 'reactions'));
    list.append(item);
  }
  item.className = `message ${message.author}${message.ephemeral ? ' ephemeral' : ''}`;
  item.dataset.messageId = message.id;
  item.querySelector('.author').textContent = message.author === 'you' ? 'you' : `imagine-bot${message.ephemeral ? ' · only you' : ''}`;
  item.querySelector('.text').textContent = message.text;
  drawImages(item.querySelector('.images'), message.images);
  drawButtons(item.querySelector('.rows'), message);
  drawReactions(item.querySelector('.reactions'), message);
}

function scrollToEnd() {
  const main = list.parentElement;
  main.scrollTop = main.scrollHeight;
}

function connect() {
  const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
  socket = new WebSocket(`${scheme}://${location.host}/chat`);
  socket.addEventListener('open', () => {
    reconnectDelayMs = 500;
    setStatus('open', 'connected');
  });
  socket.addEventListener('message', (event) => {
    const message = JSON.parse(event.data);
    if (message.type === 'transcript') {
      document.getElementById('who').textContent = `you are ${message.userId}${message.isAdmin ? ' · admin' : ''}`;
      list.replaceChildren();
      message.messages.forEach(upsert);
      if (noteAfterReconnect) showLocally(noteAfterReconnect);
      noteAfterReconnect = undefined;
    } else if (message.type === 'upsert') {
      upsert(message.message);
    } else if (message.type === 'remove') {
      document.getElementById(`m-${message.messageId}`)?.remove();
    } else if (message.type === 'form') {
      openRegionEditor(message.messageId, message.form);
      return;
    } else if (message.type === 'composer') {
      line.placeholder = message.example;
      document.getElementById('hint').textContent = message.help;
    }
    scrollToEnd();
  });
  socket.addEventListener('close', () => {
    setStatus('closed', 'disconnected — reconnecting…');
    setTimeout(connect, reconnectDelayMs);
    reconnectDelayMs = Math.min(RECONNECT_MAX_MS, reconnectDelayMs * 2);
  });
}

const MASK_COLOUR = '#ff2d7a';

/** Presets as rectangles in the picture's pixels; `border` repaints everything but the centre. */
function paintPreset(context, preset, width, height) {
  const half = { width: width / 2, height: height / 2 };
  const centre = [width / 4, height / 4, half.width, half.height];
  const rectangles = {
    left: [0, 0, half.width, height],
    right: [half.width, 0, half.width, height],
    top: [0, 0, width, half.height],
    bottom: [0, half.height, width, half.height],
    center: centre,
  };
  context.clearRect(0, 0, width, height);
  if (preset === 'border') {
    context.fillRect(0, 0, width, height);
    context.clearRect(...centre);
  } else context.fillRect(...rectangles[preset]);
}

/** The painted mask, run-length coded in reading order: keep and repaint runs alternate, starting with keep. */
function maskRuns(context, width, height) {
  const alpha = context.getImageData(0, 0, width, height).data;
  const runs = [];
  let current = 0;
  let length = 0;
  for (let index = 3; index < alpha.length; index += 4) {
    const value = alpha[index] > 127 ? 1 : 0;
    if (value !== current) {
      runs.push(length);
      current = value;
      length = 0;
    }
    length += 1;
  }
  runs.push(length);
  return runs;
}

/**
 * Vary (Region): the picture with a mask canvas over it at the picture's own size. The brush paints, the rectangle tool
 * drags a box, presets fill the mask; what is painted is repainted. The server checks the mask (empty, full, size).
 */
function openRegionEditor(messageId, form) {
  document.querySelector('dialog.editor')?.remove();
  const { width, height } = form.picture;
  const dialog = element('dialog', 'editor');
  dialog.setAttribute('aria-labelledby', 'editor-title');
  const title = element('h2', undefined, `🖌️ ${form.title}`);
  title.id = 'editor-title';
  const stage = element('div', 'stage');
  const picture = element('img');
  picture.src = form.imageUrl;
  picture.alt = 'The picture to repaint';
  const canvas = element('canvas', 'mask');
  canvas.width = width;
  canvas.height = height;
  canvas.setAttribute('aria-label', 'Mask: paint over what should be repainted');
  stage.append(picture, canvas);
  const context = canvas.getContext('2d', { willReadFrequently: true });
  context.fillStyle = MASK_COLOUR;
  context.strokeStyle = MASK_COLOUR;
  context.lineCap = 'round';
  context.lineJoin = 'round';

  const tools = element('div', 'tools');
  let tool = 'brush';
  const toolButtons = ['brush', 'rectangle'].map((name) => {
    const button = element('button', name === tool ? 'primary' : 'secondary', name === 'brush' ? 'Brush' : 'Rectangle');
    button.type = 'button';
    button.setAttribute('aria-pressed', String(name === tool));
    button.addEventListener('click', () => {
      tool = name;
      for (const other of toolButtons) {
        const chosen = other === button;
        other.className = chosen ? 'primary' : 'secondary';
        other.setAttribute('aria-pressed', String(chosen));
      }
    });
    return button;
  });
  const sizeLabel = element('label', undefined, 'Brush size ');
  const size = element('input');
  size.type = 'range';
  size.min = '1';
  size.max = String(Math.max(2, Math.round(Math.max(width, height) / 3)));
  size.value = String(Math.max(1, Math.round(Math.max(width, height) / 10)));
  sizeLabel.append(size);
  const presets = form.presets.map((preset) => {
    const button = element('button', 'secondary', preset);
    button.type = 'button';
    button.addEventListener('click', () => paintPreset(context, preset, width, height));
    return button;
  });
  const clear = element('button', 'secondary', 'Clear');
  clear.type = 'button';
  clear.addEventListener('click', () => context.clearRect(0, 0, width, height));
  tools.append(...toolButtons, sizeLabel, element('span', 'presets-label', 'Presets:'), ...presets, clear);

  const promptLabel = element('label', 'prompt', 'Prompt for the repainted area');
  const prompt = element('textarea');
  prompt.value = form.prompt;
  prompt.rows = 2;
  promptLabel.append(prompt);

  const actions = element('div', 'actions');
  const cancel = element('button', 'secondary', 'Cancel');
  cancel.type = 'button';
  cancel.addEventListener('click', () => dialog.remove());
  const submit = element('button', 'primary', 'Repaint');
  submit.type = 'button';
  submit.addEventListener('click', () => {
    const mask = { width, height, runs: maskRuns(context, width, height) };
    if (sendToServer({ type: 'form', messageId, formId: form.formId, mask, prompt: prompt.value })) dialog.remove();
  });
  actions.append(cancel, submit);

  const pointOf = (event) => {
    const box = canvas.getBoundingClientRect();
    return { x: ((event.clientX - box.left) * width) / box.width, y: ((event.clientY - box.top) * height) / box.height };
  };
  let stroke;
  canvas.addEventListener('pointerdown', (event) => {
    canvas.setPointerCapture(event.pointerId);
    const start = pointOf(event);
    stroke = { start, last: start, before: context.getImageData(0, 0, width, height) };
    if (tool === 'brush') {
      context.beginPath();
      context.arc(start.x, start.y, Number(size.value) / 2, 0, 2 * Math.PI);
      context.fill();
    }
  });
  canvas.addEventListener('pointermove', (event) => {
    if (!stroke) return;
    const point = pointOf(event);
    if (tool === 'brush') {
      context.lineWidth = Number(size.value);
      context.beginPath();
      context.moveTo(stroke.last.x, stroke.last.y);
      context.lineTo(point.x, point.y);
      context.stroke();
    } else {
      context.putImageData(stroke.before, 0, 0);
      const { start } = stroke;
      context.fillRect(Math.min(start.x, point.x), Math.min(start.y, point.y), Math.abs(point.x - start.x), Math.abs(point.y - start.y));
    }
    stroke.last = point;
  });
  const endStroke = () => {
    stroke = undefined;
  };
  canvas.addEventListener('pointerup', endStroke);
  canvas.addEventListener('pointercancel', endStroke);

  dialog.addEventListener('cancel', () => dialog.remove());
  dialog.append(title, stage, tools, promptLabel, actions);
  document.body.append(dialog);
  dialog.showModal();
}

/** A line the page itself shows (the admin sign-in's answer), never sent to or kept by the server. */
function showLocally(text) {
  upsert({ id: `local-${Date.now()}`, author: 'bot', text, images: [], buttonRows: [], reactions: [], ephemeral: true, sentAt: new Date().toISOString() });
  scrollToEnd();
}

/** `/admin login <token>` goes to the server over HTTP, which answers with the admin cookie; the token never enters the chat. */
async function adminSession(action, token) {
  const response = await fetch('/session/admin', {
    method: action === 'login' ? 'POST' : 'DELETE',
    headers: { 'Content-Type': 'application/json' },
    body: action === 'login' ? JSON.stringify({ token }) : undefined,
  });
  if (action === 'login' && !response.ok) return showLocally('⚠️ That is not the admin token.');
  // The socket keeps the session it was opened with: a new one carries the admin cookie (or its absence).
  noteAfterReconnect = action === 'login' ? 'Signed in as admin.' : 'Signed out of admin.';
  socket?.close();
}

form.addEventListener('submit', (event) => {
  event.preventDefault();
  const text = line.value.trim();
  const adminLine = ADMIN_SESSION_LINE.exec(text);
  if (adminLine) {
    line.value = '';
    adminSession(adminLine[1], adminLine[2].trim()).catch(() => showLocally('⚠️ Could not reach the server; try again.'));
  } else if (text && sendToServer({ type: 'command', text })) line.value = '';
});

// Images that finish loading after the scroll would otherwise leave the newest message half hidden.
list.addEventListener('load', scrollToEnd, true);

connect();
