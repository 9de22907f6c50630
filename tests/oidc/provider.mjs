// An ID-porten stand-in for the black-box tests: the `oidc-provider` package
// on a loopback port, with discovery, JWKS, PKCE (S256) required, the acr
// values of ID-porten, a `pid` claim, end-session (single logout), and a
// login without any page: the persona is picked by the test.
//
// Start: node tests/oidc/provider.mjs
// The first line on stdout is the issuer URL; everything else goes to stderr.
// The process ends when its stdin closes.
//
// Environment:
//   OIDC_CLIENT_ID                  client id (default "caseledger")
//   OIDC_CLIENT_SECRET              its secret, client_secret_post
//   OIDC_REDIRECT_URI               the relying party's callback (required)
//   OIDC_POST_LOGOUT_REDIRECT_URI   where logout may return to (optional)
//   OIDC_PRIVATE_KEY_FILE           when set: an RSA key is made, its private
//                                   half written there (PKCS#8 PEM), and a
//                                   second client "<client id>-jwt" using
//                                   private_key_jwt with that key is registered
//   OIDC_KEY_ID                     kid of that key (default "caseledger-test")
//   OIDC_FRONTCHANNEL_LOGOUT_URI    the relying party's front-channel logout
//                                   (optional): after a logout confirmed here
//                                   without a post_logout_redirect_uri, the
//                                   page shown loads it in a hidden frame with
//                                   iss and sid, as ID-porten does
//   OIDC_PORT                       port to listen on (default: any free one;
//                                   a fixed one lets a test restart the
//                                   provider under the same issuer)
//
// The provider's own signing key is new in every process (as after a key
// rotation at ID-porten).
//
// Personas (the test picks one with a `persona` cookie on the provider's
// origin, or with `login_hint`):
//   BankID  acr idporten-loa-high,        pid 12345678901
//   MinID   acr idporten-loa-substantial, pid 10987654321
//   NoPid   acr idporten-loa-high,        no pid (as an EU login)
// Unlike ID-porten, the stand-in does not enforce `acr_values`: the persona's
// level is what comes back, which is what the relying party must check.

import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import http from 'node:http';

import Provider from 'oidc-provider';

// Notices of oidc-provider go to stdout by default; stdout carries only the
// issuer line.
console.info = (...args) => console.error(...args);
console.log = (...args) => console.error(...args);

const PERSONAS = {
  BankID: {
    acr: 'idporten-loa-high',
    amr: ['BankID'],
    pid: '12345678901',
    name: 'Kari Nordmann',
  },
  MinID: {
    acr: 'idporten-loa-substantial',
    amr: ['Minid-PIN'],
    pid: '10987654321',
    name: 'Ola Nordmann',
  },
  NoPid: {
    acr: 'idporten-loa-high',
    amr: ['eidas'],
    pid: undefined,
    name: 'Erika Mustermann',
  },
};

const env = process.env;
const clientId = env.OIDC_CLIENT_ID || 'caseledger';
const clientSecret = env.OIDC_CLIENT_SECRET || 'caseledger-test-secret';
const redirectUri = env.OIDC_REDIRECT_URI;
const postLogoutRedirectUri = env.OIDC_POST_LOGOUT_REDIRECT_URI;
const frontchannelLogoutUri = env.OIDC_FRONTCHANNEL_LOGOUT_URI;
if (!redirectUri) {
  console.error('OIDC_REDIRECT_URI is required');
  process.exit(2);
}

function cookieValue(req, name) {
  for (const part of (req.headers.cookie || '').split(';')) {
    const [key, ...rest] = part.trim().split('=');
    if (key === name) return decodeURIComponent(rest.join('='));
  }
  return undefined;
}

function htmlEscape(text) {
  return String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

// Front-channel logouts owed: noted when the logout page is shown, sent in
// hidden frames once the logout is done (one logout at a time).
let frontchannelPending = [];
let frontchannelReady = [];

function clientBase(id) {
  return {
    client_id: id,
    redirect_uris: [redirectUri],
    post_logout_redirect_uris: postLogoutRedirectUri ? [postLogoutRedirectUri] : [],
    response_types: ['code'],
    grant_types: ['authorization_code'],
    scope: 'openid profile',
  };
}

const clients = [
  {
    ...clientBase(clientId),
    client_secret: clientSecret,
    token_endpoint_auth_method: 'client_secret_post',
  },
];

if (env.OIDC_PRIVATE_KEY_FILE) {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  writeFileSync(
    env.OIDC_PRIVATE_KEY_FILE,
    privateKey.export({ type: 'pkcs8', format: 'pem' }),
    { mode: 0o600 },
  );
  const jwk = publicKey.export({ format: 'jwk' });
  clients.push({
    ...clientBase(`${clientId}-jwt`),
    token_endpoint_auth_method: 'private_key_jwt',
    token_endpoint_auth_signing_alg: 'RS256',
    jwks: {
      keys: [{ ...jwk, kid: env.OIDC_KEY_ID || 'caseledger-test', alg: 'RS256', use: 'sig' }],
    },
  });
}

const signing = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
const signingJwk = {
  ...signing.export({ format: 'jwk' }),
  kid: randomUUID(),
  alg: 'RS256',
  use: 'sig',
};

const server = http.createServer();
server.listen(Number(env.OIDC_PORT || 0), '127.0.0.1', () => {
  const { port } = server.address();
  const issuer = `http://127.0.0.1:${port}`;

  const provider = new Provider(issuer, {
    clients,
    jwks: { keys: [signingJwk] },
    clientAuthMethods: ['client_secret_post', 'private_key_jwt'],
    responseTypes: ['code'],
    scopes: ['openid', 'profile'],
    acrValues: ['idporten-loa-substantial', 'idporten-loa-high'],
    claims: {
      acr: null,
      amr: null,
      auth_time: null,
      sid: null,
      iss: null,
      openid: ['sub', 'pid'],
      profile: ['name'],
    },
    // As ID-porten: pid (and the name here) in the ID token itself.
    conformIdTokenClaims: false,
    pkce: { required: () => true },
    cookies: { keys: ['caseledger-idporten-stand-in'] },
    features: {
      devInteractions: { enabled: false },
      rpInitiatedLogout: {
        enabled: true,
        async logoutSource(ctx, form) {
          frontchannelPending = [];
          frontchannelReady = [];
          if (frontchannelLogoutUri) {
            for (const { sid } of Object.values(ctx.oidc.session.authorizations || {})) {
              if (sid) {
                const url = new URL(frontchannelLogoutUri);
                url.searchParams.set('iss', issuer);
                url.searchParams.set('sid', sid);
                frontchannelPending.push(url.href);
              }
            }
          }
          ctx.body = `<!DOCTYPE html><html><head><title>Logout</title></head><body>${form}`
            + '<button type="submit" form="op.logoutForm" name="logout" value="yes">Log out</button>'
            + '</body></html>';
        },
        async postLogoutSuccessSource(ctx) {
          const frames = frontchannelReady
            .map((url) => `<iframe hidden src="${htmlEscape(url)}"></iframe>`)
            .join('');
          frontchannelReady = [];
          ctx.body = `<!DOCTYPE html><html><head><title>Logged out</title></head><body>Logged out${frames}</body></html>`;
        },
      },
    },
    interactions: {
      url: (ctx, interaction) => `/interaction/${interaction.uid}`,
    },
    async findAccount(ctx, id) {
      const persona = PERSONAS[id];
      if (!persona) return undefined;
      return {
        accountId: id,
        async claims() {
          const claims = { sub: id, name: persona.name };
          if (persona.pid) claims.pid = persona.pid;
          return claims;
        },
      };
    },
    async renderError(ctx, out) {
      ctx.type = 'html';
      const text = `${out.error}: ${out.error_description || ''}`.replace(/[<>&]/g, '');
      ctx.body = `<!DOCTYPE html><html><head><title>Error</title></head><body><pre id="error">${text}</pre></body></html>`;
    },
    ttl: {
      AccessToken: 600,
      AuthorizationCode: 60,
      IdToken: 600,
      Interaction: 600,
      Session: 3600,
      Grant: 3600,
    },
  });

  // As ID-porten: every ID token names the provider's session (sid).
  provider.Client.prototype.includeSid = () => true;
  provider.on('end_session.success', (ctx) => {
    frontchannelReady = ctx.oidc.params.logout ? frontchannelPending : [];
    frontchannelPending = [];
  });

  // The login "page": finishes at once with the persona the test chose, and
  // grants what the client asked for (no consent page).
  async function interaction(req, res) {
    const details = await provider.interactionDetails(req, res);
    if (details.prompt.name === 'login') {
      const name = cookieValue(req, 'persona') || details.params.login_hint;
      const persona = PERSONAS[name];
      if (!persona) {
        res.statusCode = 400;
        res.setHeader('Content-Type', 'text/plain');
        res.end(`unknown persona ${JSON.stringify(name)}; set the persona cookie or login_hint to one of ${Object.keys(PERSONAS).join(', ')}`);
        return;
      }
      console.error(`stand-in: login as ${name}`);
      await provider.interactionFinished(
        req,
        res,
        { login: { accountId: name, acr: persona.acr, amr: persona.amr } },
        { mergeWithLastSubmission: false },
      );
      return;
    }
    if (details.prompt.name === 'consent') {
      const { accountId } = details.session;
      const grant = details.grantId
        ? await provider.Grant.find(details.grantId)
        : new provider.Grant({ accountId, clientId: details.params.client_id });
      const missing = details.prompt.details;
      if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
      if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
      if (missing.missingResourceScopes) {
        for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes)) {
          grant.addResourceScope(indicator, scopes.join(' '));
        }
      }
      const grantId = await grant.save();
      await provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
      return;
    }
    res.statusCode = 400;
    res.end(`unexpected prompt ${details.prompt.name}`);
  }

  const handle = provider.callback();
  server.on('request', (req, res) => {
    if (req.url.startsWith('/interaction/')) {
      interaction(req, res).catch((error) => {
        console.error('stand-in interaction failed:', error);
        if (!res.headersSent) {
          res.statusCode = 500;
          res.end(String(error && error.message));
        }
      });
      return;
    }
    handle(req, res);
  });

  process.stdout.write(`${issuer}\n`);
});

process.stdin.on('end', () => process.exit(0));
process.stdin.on('error', () => process.exit(0));
process.stdin.resume();
