// A browser stand-in for server.mjs's pages: Node's fetch, a cookie jar, and
// redirects followed by hand, posting the login, consent and device forms as
// a person clicking through them would.
//
//   node drive.mjs login AUTHORIZE_URL USERNAME
//       Opens the authorization URL (as printed by `hoop login --no-browser`),
//       signs in as USERNAME (any password), consents, and follows redirects
//       until they leave the provider for a loopback address: the CLI's
//       callback. It GETs that URL and prints what the CLI answered.
//   node drive.mjs abort AUTHORIZE_URL
//       Opens the URL and clicks "[ Cancel ]" on the sign-in page: the
//       provider sends the CLI's callback `error=access_denied`. Prints the
//       callback's answer like `login`.
//   node drive.mjs device VERIFICATION_URI USER_CODE USERNAME
//       VERIFICATION_URI is verification_uri_complete or verification_uri.
//       Enters USER_CODE if asked, checks the confirmation page shows it,
//       confirms, signs in as USERNAME and consents, up to "Sign-in Success".
//   node drive.mjs device-deny VERIFICATION_URI USER_CODE
//       Same start, then clicks "[ Abort ]" on the confirmation page: the
//       CLI's next poll gets `access_denied`.
//
// Output on success (exit 0), on stdout:
//   STATUS <http status of the final page>
//   URL <final URL>
//   <empty line>
//   <body of the final page>
// On anything unexpected it exits 1 with a message, and the page it could not
// handle, on stderr. Usage errors exit 2.

const MAX_STEPS = 40;

class Fail extends Error {}

function fail(msg, page) {
  let text = msg;
  if (page) {
    text += `\n--- ${page.status} ${page.url}\n${page.body}`;
  }
  throw new Fail(text);
}

/** Cookies by name, with the path they were set for; one origin's worth is enough here. */
class Jar {
  #cookies = new Map();

  store(url, res) {
    for (const line of res.headers.getSetCookie()) {
      const [pair, ...attrs] = line.split(';');
      const eq = pair.indexOf('=');
      if (eq < 1) continue;
      const name = pair.slice(0, eq).trim();
      const value = pair.slice(eq + 1).trim();
      let path = '/';
      let expired = false;
      for (const attr of attrs) {
        const [k, v = ''] = attr.split('=');
        const key = k.trim().toLowerCase();
        if (key === 'path') path = v.trim() || '/';
        if (key === 'max-age' && Number(v) <= 0) expired = true;
        if (key === 'expires' && Date.parse(v) <= Date.now()) expired = true;
      }
      const id = `${url.hostname} ${path} ${name}`;
      if (expired) {
        this.#cookies.delete(id);
      } else {
        this.#cookies.set(id, {
          host: url.hostname, path, name, value,
        });
      }
    }
  }

  header(url) {
    const out = [];
    for (const c of this.#cookies.values()) {
      const inPath = url.pathname === c.path
        || url.pathname.startsWith(c.path.endsWith('/') ? c.path : `${c.path}/`);
      if (c.host === url.hostname && inPath) out.push(`${c.name}=${c.value}`);
    }
    return out.join('; ');
  }
}

const ENTITIES = {
  amp: '&', lt: '<', gt: '>', quot: '"', apos: "'",
};

function decode(text) {
  return text.replace(/&(#x[0-9a-f]+|#[0-9]+|[a-z]+);/gi, (m, e) => {
    if (e[0] === '#') {
      const n = e[1] === 'x' || e[1] === 'X' ? parseInt(e.slice(2), 16) : parseInt(e.slice(1), 10);
      return String.fromCodePoint(n);
    }
    return ENTITIES[e.toLowerCase()] ?? m;
  });
}

function attributes(tag) {
  const out = {};
  for (const m of tag.matchAll(/([a-zA-Z_:][\w.:-]*)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+)))?/g)) {
    out[m[1].toLowerCase()] = decode(m[2] ?? m[3] ?? m[4] ?? '');
  }
  return out;
}

/** The page's forms: attributes, and named inputs in document order. */
function forms(html) {
  const out = [];
  for (const m of html.matchAll(/<form\b([^>]*)>([\s\S]*?)<\/form>/gi)) {
    const attrs = attributes(m[1]);
    const inputs = [...m[2].matchAll(/<input\b([^>]*)>/gi)]
      .map((i) => attributes(i[1]))
      .filter((a) => a.name);
    out.push({ ...attrs, inputs });
  }
  return out;
}

function hidden(form) {
  return Object.fromEntries(form.inputs.filter((i) => i.type === 'hidden').map((i) => [i.name, i.value ?? '']));
}

function title(html) {
  return decode(/<title>([\s\S]*?)<\/title>/i.exec(html)?.[1]?.trim() ?? '');
}

/** The `key: value` pairs of the provider's error page, if this is one. */
function providerError(page) {
  if (!/oops! something went wrong/i.test(page.body)) return undefined;
  const pairs = [...page.body.matchAll(/<pre><strong>([^<]*)<\/strong>:\s*([\s\S]*?)<\/pre>/gi)]
    .map((m) => `${decode(m[1])}=${decode(m[2])}`);
  return pairs.join(', ') || 'unknown error';
}

function isLoopback(url) {
  return ['127.0.0.1', 'localhost', '[::1]'].includes(url.hostname);
}

class Browser {
  jar = new Jar();

  constructor(start) {
    this.provider = new URL(start).origin;
  }

  /** One request, no redirects followed. */
  async request(method, url, form) {
    const u = new URL(url);
    const headers = { 'user-agent': 'hoop-tests-drive/1', accept: 'text/html' };
    const cookie = this.jar.header(u);
    if (cookie) headers.cookie = cookie;
    let body;
    if (form) {
      headers['content-type'] = 'application/x-www-form-urlencoded';
      body = new URLSearchParams(form).toString();
    }
    let res;
    try {
      res = await fetch(u, {
        method, headers, body, redirect: 'manual',
      });
    } catch (err) {
      fail(`${method} ${u} failed: ${err.cause?.message ?? err.message}`);
    }
    this.jar.store(u, res);
    const location = res.headers.get('location');
    return {
      status: res.status,
      url: u.href,
      location: location ? new URL(location, u).href : undefined,
      body: await res.text(),
    };
  }

  /**
   * Requests `url` and follows redirects within the provider. Returns the
   * first page that is not a redirect, or `{ callback }` when a redirect
   * leaves the provider for a loopback address.
   */
  async go(method, url, form) {
    let page = await this.request(method, url, form);
    for (let i = 0; i < MAX_STEPS; i += 1) {
      if (page.status < 300 || page.status >= 400) {
        const err = page.status >= 400 && providerError(page);
        if (err) fail(`the provider refused the request: ${err}`, page);
        return page;
      }
      if (!page.location) fail('redirect without a Location header', page);
      const next = new URL(page.location);
      if (next.origin !== this.provider) {
        if (!isLoopback(next)) fail(`redirected away from the provider to a non-loopback address ${next}`, page);
        return { callback: next.href };
      }
      page = await this.request('GET', next.href);
    }
    return fail(`more than ${MAX_STEPS} redirects`, page);
  }

  async submit(page, form, extra = {}) {
    if ((form.method ?? 'get').toLowerCase() !== 'post') fail('expected a POST form', page);
    const action = new URL(form.action ?? page.url, page.url).href;
    return this.go('POST', action, { ...hidden(form), ...extra });
  }
}

/** Prints the final page in the documented format. */
function print(page) {
  process.stdout.write(`STATUS ${page.status}\nURL ${page.url}\n\n${page.body}`);
}

/** Signs in as `user` and consents until the flow leaves the interaction pages. */
async function interact(browser, start, user) {
  let page = start;
  for (let i = 0; i < MAX_STEPS; i += 1) {
    if (page.callback) return page;
    if (page.status !== 200) return page;
    const all = forms(page.body);
    const prompt = all.find((f) => hidden(f).prompt);
    const kind = prompt && hidden(prompt).prompt;
    if (kind === 'login') {
      page = await browser.submit(page, prompt, { login: user, password: 'any password' });
    } else if (kind === 'consent') {
      page = await browser.submit(page, prompt);
    } else if (title(page.body) === 'Submitting Callback' && all.length === 1) {
      // An auto-submitting form (what a browser's script would post).
      page = await browser.submit(page, all[0]);
    } else {
      return page;
    }
  }
  return fail(`more than ${MAX_STEPS} pages`, page);
}

async function callback(browser, page) {
  if (!page.callback) fail('expected the flow to end at the CLI\'s loopback callback', page);
  // The callback is the CLI's own server, not the provider: fetch it as is.
  print(await browser.request('GET', page.callback));
}

async function login(url, user) {
  const browser = new Browser(url);
  const page = await interact(browser, await browser.go('GET', url), user);
  await callback(browser, page);
}

async function abort(url) {
  const browser = new Browser(url);
  let page = await browser.go('GET', url);
  if (page.callback) fail(`the provider answered without asking anyone to sign in: ${page.callback}`);
  const cancel = [...page.body.matchAll(/<a\b([^>]*)>\s*\[\s*Cancel\s*\]\s*<\/a>/gi)][0];
  if (!cancel) fail('no "[ Cancel ]" link on the sign-in page', page);
  page = await browser.go('GET', new URL(attributes(cancel[1]).href, page.url).href);
  await callback(browser, page);
}

function normalizeCode(code) {
  return code.replace(/[^a-z0-9]/gi, '').toUpperCase();
}

/** Opens the device page and gets to the confirmation form for `code`. */
async function deviceConfirmation(browser, uri, code) {
  let page = await browser.go('GET', uri);
  for (let i = 0; i < 3; i += 1) {
    if (page.callback) fail(`unexpected redirect to ${page.callback}`);
    const all = forms(page.body);
    const byId = (id) => all.find((f) => f.id === id);
    if (byId('op.deviceConfirmForm')) {
      const shown = /<code>([^<]*)<\/code>/i.exec(page.body)?.[1];
      if (!shown || normalizeCode(decode(shown)) !== normalizeCode(code)) {
        fail(`the confirmation page shows code ${shown} but the CLI printed ${code}`, page);
      }
      return { page, form: byId('op.deviceConfirmForm') };
    }
    if (/class="red"/.test(page.body)) {
      fail(`the device page reports an error: ${/<p class="red">([^<]*)<\/p>/.exec(page.body)?.[1]}`, page);
    }
    if (byId('op.deviceInputForm')) {
      page = await browser.submit(page, byId('op.deviceInputForm'), { user_code: code });
    } else if (title(page.body) === 'Submitting Callback' && all.length === 1) {
      page = await browser.submit(page, all[0]);
    } else {
      break;
    }
  }
  return fail('expected the device code confirmation page', page);
}

async function device(uri, code, user) {
  const browser = new Browser(uri);
  const { page, form } = await deviceConfirmation(browser, uri, code);
  const done = await interact(browser, await browser.submit(page, form), user);
  if (done.callback || title(done.body) !== 'Sign-in Success') {
    fail('expected the "Sign-in Success" page', done.callback ? { status: 302, url: done.callback, body: '' } : done);
  }
  print(done);
}

async function deviceDeny(uri, code) {
  const browser = new Browser(uri);
  const { page, form } = await deviceConfirmation(browser, uri, code);
  // The "[ Abort ]" button submits the confirmation form plus abort=yes.
  const done = await browser.submit(page, form, { abort: 'yes' });
  if (done.callback || !/The Sign-in request was interrupted/.test(done.body)) {
    fail('expected the "request was interrupted" page', done.callback ? { status: 302, url: done.callback, body: '' } : done);
  }
  print(done);
}

const USAGE = `usage:
  node drive.mjs login AUTHORIZE_URL USERNAME
  node drive.mjs abort AUTHORIZE_URL
  node drive.mjs device VERIFICATION_URI USER_CODE USERNAME
  node drive.mjs device-deny VERIFICATION_URI USER_CODE`;

const COMMANDS = {
  login: [2, login],
  abort: [1, abort],
  device: [3, device],
  'device-deny': [2, deviceDeny],
};

const [cmd, ...args] = process.argv.slice(2);
const entry = COMMANDS[cmd];
if (!entry || args.length !== entry[0] || args.some((a) => a.length === 0)) {
  console.error(USAGE);
  process.exit(2);
}
try {
  await entry[1](...args);
} catch (err) {
  console.error(`drive.mjs ${cmd}: ${err instanceof Fail ? err.message : err.stack}`);
  process.exit(1);
}
