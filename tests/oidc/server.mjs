// A real OpenID Connect provider for hoop's end-to-end login tests.
//
// Running it by hand: `cd tests/oidc && npm ci && node server.mjs` (Node 20
// prints an "unsupported runtime" warning; oidc-provider 9 wants 22, and runs
// anyway). It listens on 127.0.0.1 on a free port and prints one line,
// `ISSUER=http://127.0.0.1:PORT`, to stdout; everything else goes to stderr.
// Point an agent's `[[issuer]] url` at that address with `audience = "hoop"`,
// run `hoop login --no-browser`, and open the printed URL in a browser (any
// login name works, the password is ignored: `alice` is alice@example.com in
// group "eng", `bob` is bob@example.com in "sales"), or let
// `node drive.mjs login URL alice` do it. Options (or the environment
// variable in brackets): `--port N` [OIDC_PORT] (default 0, a free port),
// `--access-ttl SECS` [OIDC_ACCESS_TTL] (access-token lifetime, default 600),
// `--ci-secret S` [OIDC_CI_SECRET] (secret of the `hoop-ci` client, default
// `hoop-ci-test-secret`). State lives in memory and dies with the process.
//
// Clients:
// - `hoop-cli`: native, public (no secret, PKCE S256 required), grants
//   authorization_code, refresh_token and device_code; redirect URI
//   `http://127.0.0.1/callback` on any port (loopback rule for native apps).
// - `hoop-ci`: confidential (client_secret_basic or client_secret_post),
//   grant client_credentials; its tokens have `sub` = `hoop-ci`, groups ["ci"].
//
// Every access token is a JWT (RS256, `typ: at+jwt`) for audience `hoop`
// (resource indicator `urn:hoop`, the default resource), carrying `email`
// and `groups` claims. Refresh tokens are issued when `offline_access` is
// granted, and rotate on every use.

import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import { parseArgs } from 'node:util';

import Provider, { errors } from 'oidc-provider';

const { values: opts } = parseArgs({
  options: {
    port: { type: 'string', default: process.env.OIDC_PORT ?? '0' },
    'access-ttl': { type: 'string', default: process.env.OIDC_ACCESS_TTL ?? '600' },
    'ci-secret': { type: 'string', default: process.env.OIDC_CI_SECRET ?? 'hoop-ci-test-secret' },
  },
  strict: true,
});

function positiveInt(name, text, { allowZero = false } = {}) {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 0 || (n === 0 && !allowZero)) {
    console.error(`server.mjs: --${name} must be a ${allowZero ? 'non-negative' : 'positive'} integer, got ${JSON.stringify(text)}`);
    process.exit(2);
  }
  return n;
}

const port = positiveInt('port', opts.port, { allowZero: true });
const accessTtl = positiveInt('access-ttl', opts['access-ttl']);
const ciSecret = opts['ci-secret'];
if (ciSecret.length === 0) {
  console.error('server.mjs: --ci-secret must not be empty');
  process.exit(2);
}

/** Resource indicator every token is for unless the client asks otherwise. */
const RESOURCE = 'urn:hoop';
/** `aud` of the access tokens: what the agent's `[[issuer]] audience` expects. */
const AUDIENCE = 'hoop';

/** Groups by login name; anyone else signs in with no groups. */
const GROUPS = { alice: ['eng'], bob: ['sales'] };
const CI_GROUPS = ['ci'];

/** The account behind a login name: `alice` -> alice@example.com. */
function account(id) {
  const email = id.includes('@') ? id : `${id}@example.com`;
  const name = id.split('@')[0];
  return {
    accountId: id,
    email,
    groups: GROUPS[name] ?? [],
    async claims() {
      return {
        sub: id, email, email_verified: true, name, groups: GROUPS[name] ?? [],
      };
    },
  };
}

// Fresh signing key per run: a test never trusts a key from another run.
const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const jwk = { ...privateKey.export({ format: 'jwk' }), kid: randomBytes(8).toString('hex'), alg: 'RS256', use: 'sig' };

// Bind first, so the issuer can name the port actually given.
const server = createServer();
await new Promise((resolve, reject) => {
  server.once('error', reject);
  server.listen(port, '127.0.0.1', resolve);
});
const issuer = `http://127.0.0.1:${server.address().port}`;

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: 'hoop-cli',
      client_name: 'hoop CLI',
      application_type: 'native',
      token_endpoint_auth_method: 'none',
      grant_types: ['authorization_code', 'refresh_token', 'urn:ietf:params:oauth:grant-type:device_code'],
      response_types: ['code'],
      redirect_uris: ['http://127.0.0.1/callback'],
      scope: 'openid email profile offline_access',
    },
    {
      client_id: 'hoop-ci',
      client_name: 'hoop CI',
      client_secret: ciSecret,
      token_endpoint_auth_method: 'client_secret_basic',
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
    },
  ],
  // A client registered for client_secret_basic may also authenticate with
  // client_secret_post: oidc-provider treats the two as one method.
  clientAuthMethods: ['none', 'client_secret_basic', 'client_secret_post'],
  jwks: { keys: [jwk] },
  cookies: { keys: [randomBytes(32).toString('hex')] },
  scopes: ['openid', 'email', 'profile', 'offline_access'],
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified', 'groups'],
    profile: ['name'],
  },
  async findAccount(_ctx, sub) {
    return account(sub);
  },
  // The agent reads the user from `email` (falling back to `sub`) and the
  // groups from `groups`, in the access token itself.
  async extraTokenClaims(_ctx, token) {
    if (token.accountId) {
      const a = account(token.accountId);
      return { email: a.email, groups: a.groups };
    }
    if (token.kind === 'ClientCredentials') {
      return { groups: CI_GROUPS };
    }
    return undefined;
  },
  pkce: { required: () => true },
  features: {
    devInteractions: { enabled: true },
    deviceFlow: { enabled: true },
    clientCredentials: { enabled: true },
    revocation: { enabled: true },
    introspection: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => RESOURCE,
      useGrantedResource: () => true,
      getResourceServerInfo(_ctx, indicator) {
        if (indicator !== RESOURCE) {
          throw new errors.InvalidTarget(`unknown resource ${indicator}; this provider knows only ${RESOURCE}`);
        }
        return {
          audience: AUDIENCE,
          scope: 'openid email profile offline_access',
          accessTokenTTL: accessTtl,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: 'RS256' } },
        };
      },
    },
  },
  async issueRefreshToken(_ctx, client, code) {
    return client.grantTypeAllowed('refresh_token') && code.scopes.has('offline_access');
  },
  // Every refresh hands out a new refresh token and retires the old one.
  rotateRefreshToken: () => true,
  ttl: {
    AccessToken: accessTtl,
    ClientCredentials: accessTtl,
    AuthorizationCode: 60,
    DeviceCode: 600,
    IdToken: 3600,
    RefreshToken: 24 * 3600,
    Interaction: 3600,
    Session: 24 * 3600,
    Grant: 24 * 3600,
  },
});

provider.on('server_error', (_ctx, err) => console.error('server_error', err));
provider.on('grant.error', (_ctx, err) => console.error('grant.error', err.message, err.error_description ?? ''));
provider.on('authorization.error', (_ctx, err) => console.error('authorization.error', err.message, err.error_description ?? ''));

server.on('request', provider.callback());

process.stdout.write(`ISSUER=${issuer}\n`);
console.error(`oidc-provider listening at ${issuer} (access-token TTL ${accessTtl}s)`);

for (const sig of ['SIGTERM', 'SIGINT']) {
  process.on(sig, () => {
    server.close();
    server.closeAllConnections();
    process.exit(0);
  });
}
