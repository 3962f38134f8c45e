/** What a browser does first on the web chat: open the page, and keep the session cookie the server sets with it. */
export async function openWebSession(webUrl: string): Promise<string> {
  const page = await fetch(new URL('/', webUrl));
  const cookies = page.headers.getSetCookie().map((line) => line.split(';')[0]);
  if (page.status !== 200 || cookies.length === 0) throw new Error(`the web chat page answered ${page.status} without a session cookie`);
  return cookies.join('; ');
}
