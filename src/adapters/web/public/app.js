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
    }
    scrollToEnd();
  });
  socket.addEventListener('close', () => {
    setStatus('closed', 'disconnected — reconnecting…');
    setTimeout(connect, reconnectDelayMs);
    reconnectDelayMs = Math.min(RECONNECT_MAX_MS, reconnectDelayMs * 2);
  });
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
