// A real OpenID provider (panva/oidc-provider, OpenID-certified) configured to behave like Duo SSO
// as far as DUO.md describes it: RS256, PKCE S256 required, client_secret_basic/post, no
// email_verified or preferred_username, custom scope crm.contacts.read, userinfo, introspection,
// refresh tokens. It also sends the RFC 9207 `iss` parameter, which Duo does not document.
//
// Configuration from the environment:
//   OP_PORT          port on 127.0.0.1 (default 8900)
//   OP_RP_BASE_URLS  comma-separated base URLs of the relying parties (default http://127.0.0.1:8000)
//   OP_CLIENT_SECRET secret of the clients "django-basic" and "django-post"
// Any login name is an account. The example's three (README): alice (group crm-users), bob (no group,
// and never granted crm.contacts.read: WITHHELD_SCOPES), carol (groups crm-users and admins).
// Prints "READY <issuer>" on stdout when it listens. Test-only endpoints under /__test__/.
import { createHash, randomUUID } from 'node:crypto';
import { Provider, errors } from 'oidc-provider';
import { generateKeyPair, exportJWK } from 'jose';

const port = Number(process.env.OP_PORT || 8900);
const issuer = `http://127.0.0.1:${port}`;
const bases = (process.env.OP_RP_BASE_URLS || 'http://127.0.0.1:8000').split(',').map((b) => b.replace(/\/$/, ''));
const secret = process.env.OP_CLIENT_SECRET || 'sp+ec/ial:chars%25x=0123456789abcdefghij';

// A fresh key with a fresh kid on every start: a relying party's cached JWKS then sees an unknown
// kid after a restart (and must refetch) instead of a changed key under a known kid.
const { privateKey } = await generateKeyPair('RS256', { extractable: true });
const jwk = { ...(await exportJWK(privateKey)), kid: createHash('sha256').update(randomUUID()).digest('hex'), alg: 'RS256', use: 'sig' };

// OpenID Connect Back-Channel Logout 1.0: a client has one backchannel_logout_uri, so the first relying
// party base gets the logout tokens, at the provider row named after the client ("duo" for django-basic,
// "duo-post" for django-post, as tests/e2e/conftest.py creates them). With session_required the ID token
// and the logout token carry `sid`.
const client = (id, method, slug) => ({
  client_id: id,
  client_secret: secret,
  token_endpoint_auth_method: method,
  grant_types: ['authorization_code', 'refresh_token', 'client_credentials'],
  response_types: ['code'],
  redirect_uris: bases.map((b) => `${b}/oidc/callback/`),
  post_logout_redirect_uris: bases.map((b) => `${b}/`),
  backchannel_logout_uri: `${bases[0]}/oidc/backchannel-logout/${slug}/`,
  backchannel_logout_session_required: true,
});

const GROUPS = { alice: ['crm-users'], bob: [], carol: ['crm-users', 'admins'] };
// Scopes an account is never granted, whatever it consents to (an administrator's policy in Duo): the
// consent records them as rejected, so they are not asked again and never reach a code or a token.
const WITHHELD_SCOPES = { bob: ['crm.contacts.read'] };

// The grant of this authorization (oidc-provider's default lookup), minus the account's withheld scopes,
// for the OpenID scopes and for every resource server (urn:crm).
async function loadExistingGrant(ctx) {
  const grantId = ctx.oidc.result?.consent?.grantId || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
  const grant = grantId ? await ctx.oidc.provider.Grant.find(grantId) : undefined;
  const withheld = (grant && Object.hasOwn(WITHHELD_SCOPES, grant.accountId) && WITHHELD_SCOPES[grant.accountId]) || [];
  if (withheld.length) {
    grant.rejectOIDCScope(withheld.join(' '));
    for (const indicator of Object.keys(grant.resources || {})) grant.rejectResourceScope(indicator, withheld.join(' '));
    await grant.save();
  }
  return grant;
}

const provider = new Provider(issuer, {
  clients: [client('django-basic', 'client_secret_basic', 'duo'), client('django-post', 'client_secret_post', 'duo-post')],
  pkce: { required: () => true },
  scopes: ['openid', 'offline_access', 'profile', 'email', 'groups', 'crm.contacts.read'],
  claims: { openid: ['sub'], profile: ['name', 'given_name', 'family_name'], email: ['email'], groups: ['groups'] },
  conformIdTokenClaims: false,
  loadExistingGrant,
  async findAccount(ctx, sub) {
    const name = sub.charAt(0).toUpperCase() + sub.slice(1);
    return {
      accountId: sub,
      async claims() {
        return { sub, email: `${sub}@example.test`, name: `${name} Example`, given_name: name, family_name: 'Example', groups: GROUPS[sub] || [] };
      },
    };
  },
  async issueRefreshToken(ctx, c) { return c.grantTypeAllowed('refresh_token'); },
  features: {
    devInteractions: { enabled: true },
    introspection: { enabled: true, allowedPolicy: async () => true },
    revocation: { enabled: true },
    clientCredentials: { enabled: true },
    rpInitiatedLogout: { enabled: true },
    backchannelLogout: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: async (ctx, c, oneOf) => oneOf,
      useGrantedResource: async () => false,
      getResourceServerInfo: async (ctx, indicator) => {
        if (indicator !== 'urn:crm') throw new errors.InvalidTarget();
        return { scope: 'crm.contacts.read', audience: 'urn:crm', accessTokenFormat: 'jwt', jwt: { sign: { alg: 'RS256' } }, accessTokenTTL: 600 };
      },
    },
  },
  jwks: { keys: [jwk] },
  // The provider's outgoing requests (back-channel logout posts) refuse loopback addresses (its SSRF
  // guard, a dispatcher it passes in). The relying parties under test listen on 127.0.0.1: drop the guard.
  fetch: (url, options) => {
    const { dispatcher, ...rest } = options;
    return globalThis.fetch(url, rest);
  },
  cookies: { keys: [randomUUID()] },
  ttl: { AccessToken: 600, AuthorizationCode: 60, IdToken: 300, RefreshToken: 3600, ClientCredentials: 600, Interaction: 600, Session: 3600, Grant: 3600 },
});

// Test-only: what an administrator revoking a user's access in Duo amounts to. Grants are tracked per
// account; POST /__test__/revoke?sub=alice revokes every grant of alice and all tokens issued under them.
// GET /__test__/stats counts the calls to the token and introspection endpoints.
const grantsByAccount = new Map();
provider.on('grant.saved', (grant) => {
  if (!grantsByAccount.has(grant.accountId)) grantsByAccount.set(grant.accountId, new Set());
  grantsByAccount.get(grant.accountId).add(grant.jti);
});
const stats = { introspection: 0, token: 0 };
provider.use(async (ctx, next) => {
  if (ctx.path === '/token/introspection') stats.introspection += 1;
  if (ctx.path === '/token') stats.token += 1;
  if (ctx.path === '/__test__/stats') {
    ctx.body = stats;
    return;
  }
  if (ctx.path === '/__test__/revoke' && ctx.method === 'POST') {
    const sub = ctx.query.sub;
    for (const grantId of grantsByAccount.get(sub) || []) {
      await Promise.all([provider.AccessToken, provider.RefreshToken, provider.AuthorizationCode]
        .map((model) => model.revokeByGrantId(grantId)));
      const grant = await provider.Grant.find(grantId);
      if (grant) await grant.destroy();
    }
    grantsByAccount.delete(sub);
    ctx.status = 204;
    return;
  }
  await next();
});

// Test-only: what became of the last back-channel logout posts (GET /__test__/backchannel).
const backchannel = [];
provider.on('backchannel.success', (ctx, client, accountId, sid) => backchannel.push({ client: client.clientId, accountId, sid, ok: true }));
provider.on('backchannel.error', (ctx, err, client, accountId, sid) => backchannel.push({ client: client.clientId, accountId, sid, ok: false, error: String(err.message) }));
provider.use(async (ctx, next) => {
  if (ctx.path === '/__test__/backchannel') {
    ctx.body = backchannel;
    return;
  }
  await next();
});

provider.listen(port, '127.0.0.1', () => {
  process.stdout.write(`READY ${issuer}\n`);
});

for (const signal of ['SIGTERM', 'SIGINT']) process.on(signal, () => process.exit(0));
