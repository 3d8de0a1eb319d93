// gatepass as an OpenID Connect provider, driven by openid-client (npm, an independent
// client): discovery, the authorization code flow with PKCE (signing in through gatepass's
// own login and consent pages with a cookie jar), ID token validation (signature against
// the JWKS, iss, aud, nonce, at_hash), userinfo, refresh with rotation and reuse
// detection, a resource indicator (RFC 8707), client_credentials, introspection (RFC 7662),
// revocation (RFC 7009), the device authorization grant (RFC 8628: the user approves,
// and denies, on gatepass's device page with the same cookie jar) and RP-initiated logout
// (the end_session_endpoint, with the URL openid-client builds).
//
// Usage: node check.mjs ISSUER CLIENT.json CC_CLIENT.json INTROSPECT_ID INTROSPECT_SECRET USERNAME PASSWORD EMAIL RESOURCE DEVICE_CLIENT.json
// (CLIENT.json, CC_CLIENT.json, DEVICE_CLIENT.json: what `gatepass clients add` printed.)
// Prints PASS/FAIL lines; exits non-zero on any failure.

import { readFileSync } from "node:fs";
import * as client from "openid-client";

const [issuerArg, webFile, ccFile, introspectId, introspectSecret, username, password, email, resource, deviceFile, ecFile] =
  process.argv.slice(2);
const web = JSON.parse(readFileSync(webFile, "utf8"));
const cc = JSON.parse(readFileSync(ccFile, "utf8"));
const device = JSON.parse(readFileSync(deviceFile, "utf8"));
const ec = JSON.parse(readFileSync(ecFile, "utf8"));
const issuer = new URL(issuerArg);
const redirectUri = web.redirect_uris[0];
// gatepass runs on plain http on loopback here; openid-client refuses that unless told.
const insecure = { execute: [client.allowInsecureRequests] };

let failed = 0;
function pass(msg) {
  console.log(`PASS ${msg}`);
}
function fail(msg) {
  console.log(`FAIL ${msg}`);
  failed += 1;
}
function check(cond, msg) {
  if (cond) pass(msg);
  else fail(msg);
  return cond;
}
async function step(name, fn) {
  try {
    await fn();
  } catch (e) {
    fail(`${name}: ${e?.constructor?.name}: ${e?.message} ${e?.error ? `(${e.error})` : ""}`);
    return false;
  }
  return true;
}
// The OAuth error code of a refusal: from the JSON body, which openid-client reads except
// when a 401 carries a WWW-Authenticate challenge (a failed client authentication).
async function errorCode(e) {
  if (e?.error) return e.error;
  if (e instanceof client.WWWAuthenticateChallengeError) {
    try {
      return (await e.response.json()).error;
    } catch {
      return e.cause?.[0]?.parameters?.error;
    }
  }
  return undefined;
}
async function refused(name, fn, error) {
  try {
    await fn();
    fail(`${name}: accepted`);
  } catch (e) {
    const got = await errorCode(e);
    check(got === error, `${name}: refused with ${got ?? e?.message} (expected ${error})`);
  }
}
function payload(jwt) {
  return JSON.parse(Buffer.from(jwt.split(".")[1], "base64url").toString("utf8"));
}

// A browser: cookies by name, redirects followed by hand (the last hop goes to the client).
const jar = new Map();
async function browse(url, init = {}) {
  const headers = new Headers(init.headers ?? {});
  if (jar.size) headers.set("cookie", [...jar].map(([k, v]) => `${k}=${v}`).join("; "));
  const res = await fetch(url, { ...init, headers, redirect: "manual" });
  for (const c of res.headers.getSetCookie()) {
    const [pair, ...attrs] = c.split(";");
    const i = pair.indexOf("=");
    const name = pair.slice(0, i).trim();
    const value = pair.slice(i + 1).trim();
    const gone = !value || attrs.some((a) => /^\s*max-age=0\s*$/i.test(a));
    if (gone) jar.delete(name);
    else jar.set(name, value);
  }
  return res;
}
function unescapeHtml(s) {
  return s
    .replace(/&#x27;|&#39;/g, "'")
    .replace(/&quot;|&#34;/g, '"')
    .replace(/&lt;|&#60;/g, "<")
    .replace(/&gt;|&#62;/g, ">")
    .replace(/&amp;|&#38;/g, "&");
}
// The fields of the form posting to `action`: every named input (hidden ones included,
// the CSRF token among them).
function formFields(html, action) {
  const start = html.search(new RegExp(`<form[^>]*action="${action.replace(/[/?]/g, "\\$&")}"`));
  if (start < 0) throw new Error(`no form posting to ${action}`);
  const form = html.slice(start, html.indexOf("</form>", start));
  const fields = new URLSearchParams();
  for (const m of form.matchAll(/<input\b[^>]*>/g)) {
    const name = /\bname="([^"]*)"/.exec(m[0]);
    const value = /\bvalue="([^"]*)"/.exec(m[0]);
    if (name) fields.set(unescapeHtml(name[1]), value ? unescapeHtml(value[1]) : "");
  }
  return fields;
}
const origin = { origin: issuer.origin, "content-type": "application/x-www-form-urlencoded" };

// Through the pages: sign-in (first time), consent (first time), back to the client.
async function signInAndAuthorize(url) {
  let res = await browse(url);
  let page = res.status === 200 ? await res.text() : "";
  if (res.status === 200 && page.includes('action="/ui/login"')) {
    const fields = formFields(page, "/ui/login");
    fields.set("username", username);
    fields.set("password", password);
    res = await browse(new URL("/ui/login", issuer), { method: "POST", headers: origin, body: fields });
    if (res.status !== 303) throw new Error(`login answered ${res.status}`);
    res = await browse(new URL(res.headers.get("location"), issuer));
    page = res.status === 200 ? await res.text() : "";
  }
  if (res.status === 200 && page.includes('action="/oauth/consent"')) {
    check(res.headers.get("x-frame-options") === "DENY", "the consent page refuses framing");
    const fields = formFields(page, "/oauth/consent");
    check(fields.get("csrf_token")?.length > 0, "the consent form carries a CSRF token");
    fields.set("decision", "allow");
    res = await browse(new URL("/oauth/consent", issuer), { method: "POST", headers: origin, body: fields });
  }
  if (res.status !== 303) throw new Error(`authorization ended with ${res.status}`);
  const location = new URL(res.headers.get("location"), issuer);
  if (!location.href.startsWith(redirectUri)) throw new Error(`redirected to ${location.origin}${location.pathname}`);
  return location;
}

async function codeFlow(config, extra = {}, scope = "openid profile email offline_access") {
  const verifier = client.randomPKCECodeVerifier();
  const state = client.randomState();
  const nonce = client.randomNonce();
  const url = client.buildAuthorizationUrl(config, {
    redirect_uri: redirectUri,
    scope,
    code_challenge: await client.calculatePKCECodeChallenge(verifier),
    code_challenge_method: "S256",
    state,
    nonce,
    ...extra,
  });
  const callback = await signInAndAuthorize(url);
  return client.authorizationCodeGrant(config, callback, {
    pkceCodeVerifier: verifier,
    expectedState: state,
    expectedNonce: nonce,
    idTokenExpected: true,
  });
}

let config;
await step("discovery", async () => {
  // client_secret_basic, the method gatepass names first in its metadata.
  const basic = client.ClientSecretBasic(web.client_secret);
  config = await client.discovery(issuer, web.client_id, undefined, basic, insecure);
  const meta = config.serverMetadata();
  check(meta.issuer === issuer.href.replace(/\/$/, ""), `discovery: issuer ${meta.issuer}`);
  check(meta.code_challenge_methods_supported?.includes("S256"), "discovery: PKCE S256");
  check(!!meta.token_endpoint && !!meta.userinfo_endpoint && !!meta.jwks_uri, "discovery: endpoints");
  // Verify ID token signatures against the JWKS too (openid-client skips it for tokens it
  // got straight from the token endpoint otherwise).
  client.enableNonRepudiationChecks(config);
});
if (!config) process.exit(1);

let tokens;
let claims;
await step("code flow", async () => {
  tokens = await codeFlow(config, { resource });
  claims = tokens.claims();
  pass("code + PKCE flow through the sign-in and consent pages; ID token validated by openid-client");
  check(claims.iss === config.serverMetadata().issuer && claims.aud === web.client_id, "ID token iss and aud");
  check(typeof claims.auth_time === "number" && Array.isArray(claims.amr) && !!claims.at_hash, "ID token auth_time, amr, at_hash");
  check(!!tokens.refresh_token && tokens.token_type.toLowerCase() === "bearer", "refresh token with offline_access");
  const at = payload(tokens.access_token);
  check(at.aud === resource && at.client_id === web.client_id, `access token aud is the resource (${at.aud})`);
});

await step("userinfo", async () => {
  const info = await client.fetchUserInfo(config, tokens.access_token, claims.sub);
  check(info.preferred_username === username && info.email === email, "userinfo: username and email");
});

let refreshed;
await step("refresh", async () => {
  refreshed = await client.refreshTokenGrant(config, tokens.refresh_token);
  check(refreshed.refresh_token && refreshed.refresh_token !== tokens.refresh_token, "refresh rotates the refresh token");
  check(payload(refreshed.access_token).aud === resource, "the refreshed access token keeps the resource");
  const info = await client.fetchUserInfo(config, refreshed.access_token, claims.sub);
  check(info.sub === claims.sub, "userinfo with the refreshed token");
});

let ccTokens;
let ccConfig;
await step("client credentials", async () => {
  // client_secret_post for this one, so that both methods are used.
  ccConfig = await client.discovery(issuer, cc.client_id, cc.client_secret, client.ClientSecretPost(), insecure);
  ccTokens = await client.clientCredentialsGrant(ccConfig, { scope: cc.scope.split(" ")[0] });
  const at = payload(ccTokens.access_token);
  check(at.sub === cc.client_id && at.client_id === cc.client_id && !ccTokens.refresh_token, "client_credentials token");
  await refused("client_credentials with a wrong secret", async () => {
    const wrong = await client.discovery(issuer, cc.client_id, undefined, client.ClientSecretBasic(`${cc.client_secret}x`), insecure);
    await client.clientCredentialsGrant(wrong);
  }, "invalid_client");
});

let introspector;
await step("introspection", async () => {
  // Introspection credentials are HTTP Basic (introspection_endpoint_auth_methods_supported).
  introspector = await client.discovery(issuer, introspectId, undefined, client.ClientSecretBasic(introspectSecret), insecure);
  const live = await client.tokenIntrospection(introspector, refreshed.access_token);
  check(live.active === true && live.client_id === web.client_id && live.sub === claims.sub, "introspection: a client's access token is active");
  check(String(live.scope).split(" ").includes("openid"), "introspection: scope");
  const machine = await client.tokenIntrospection(introspector, ccTokens.access_token);
  check(machine.active === true && machine.client_id === cc.client_id, "introspection: a client_credentials token is active");
  const junk = await client.tokenIntrospection(introspector, "not-a-token");
  check(junk.active === false, "introspection: junk is inactive");
});

await step("revocation", async () => {
  await client.tokenRevocation(config, refreshed.refresh_token);
  const after = await client.tokenIntrospection(introspector, refreshed.access_token);
  check(after.active === false, "revoking the refresh token ends the grant (its access token is inactive)");
  await refused("refresh with the revoked token", () => client.refreshTokenGrant(config, refreshed.refresh_token), "invalid_grant");
});

await step("refresh token reuse", async () => {
  // A second grant (signed in and consented already: straight back to the client).
  const second = await codeFlow(config);
  const next = await client.refreshTokenGrant(config, second.refresh_token);
  await refused("a rotated refresh token presented again", () => client.refreshTokenGrant(config, second.refresh_token), "invalid_grant");
  await refused("its successor after the reuse", () => client.refreshTokenGrant(config, next.refresh_token), "invalid_grant");
  const after = await client.tokenIntrospection(introspector, next.access_token);
  check(after.active === false, "reuse revoked the grant");
});

await step("bad resource", async () => {
  await refused(
    "a resource the client may not have",
    () => client.clientCredentialsGrant(ccConfig, { resource: "https://elsewhere.example.test" }),
    "invalid_target",
  );
});

// The user, signed in already (the jar), enters the code on the device page and decides.
async function decideOnDevicePage(verificationUriComplete, decision) {
  let res = await browse(verificationUriComplete);
  if (res.status !== 200) throw new Error(`device page answered ${res.status}`);
  let page = await res.text();
  check(res.headers.get("x-frame-options") === "DENY", "the device page refuses framing");
  const entered = formFields(page, "/oauth/device");
  check(entered.get("csrf_token")?.length > 0 && entered.get("user_code")?.length === 9, "the device form is prefilled and carries a CSRF token");
  res = await browse(new URL("/oauth/device", issuer), { method: "POST", headers: origin, body: entered });
  page = await res.text();
  if (res.status !== 200 || !page.includes(device.client_name)) throw new Error(`code entry answered ${res.status}`);
  const confirm = formFields(page, "/oauth/device");
  confirm.set("decision", decision);
  res = await browse(new URL("/oauth/device", issuer), { method: "POST", headers: origin, body: confirm });
  if (res.status !== 200) throw new Error(`the decision answered ${res.status}`);
}

await step("device flow", async () => {
  const deviceConfig = await client.discovery(issuer, device.client_id, undefined, client.None(), insecure);
  check(
    deviceConfig.serverMetadata().device_authorization_endpoint === new URL("/oauth/device_authorization", issuer).href,
    "discovery names the device authorization endpoint",
  );
  const started = await client.initiateDeviceAuthorization(deviceConfig, { scope: "openid profile offline_access" });
  check(/^[BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4}$/.test(started.user_code), "user code XXXX-XXXX");
  check(started.verification_uri === new URL("/oauth/device", issuer).href, "verification_uri");
  // The device polls while the user decides.
  const polling = client.pollDeviceAuthorizationGrant(deviceConfig, started);
  await decideOnDevicePage(started.verification_uri_complete, "allow");
  const tokens = await polling;
  const claims = tokens.claims();
  check(claims?.aud === device.client_id && claims?.iss === issuer.href.replace(/\/$/, ""), "device flow: ID token validated");
  check(claims?.nonce === undefined && Array.isArray(claims?.amr), "device flow: no nonce, amr from the sign-in");
  check(typeof tokens.refresh_token === "string", "device flow: a refresh token with offline_access");
  const info = await client.fetchUserInfo(deviceConfig, tokens.access_token, claims.sub);
  check(info.preferred_username === username, "device flow: userinfo");
  const refreshed = await client.refreshTokenGrant(deviceConfig, tokens.refresh_token);
  check(typeof refreshed.access_token === "string", "device flow: refresh");

  const denied = await client.initiateDeviceAuthorization(deviceConfig, { scope: "openid" });
  const deniedPoll = client.pollDeviceAuthorizationGrant(deviceConfig, denied);
  await decideOnDevicePage(denied.verification_uri_complete, "deny");
  await refused("device flow denied on the page", () => deniedPoll, "access_denied");
});

await step("ES256 ID tokens", async () => {
  // A client registered with --id-token-alg ES256 tells openid-client so in its metadata;
  // openid-client then accepts only ES256 ID tokens, verified against the JWKS.
  const ecConfig = await client.discovery(issuer, ec.client_id, { id_token_signed_response_alg: "ES256" },
    client.ClientSecretBasic(ec.client_secret), insecure);
  client.enableNonRepudiationChecks(ecConfig);
  check(ecConfig.serverMetadata().id_token_signing_alg_values_supported?.includes("ES256"), "discovery lists ES256 for ID tokens");
  const ecTokens = await codeFlow(ecConfig, {}, "openid profile");
  const header = JSON.parse(Buffer.from(ecTokens.id_token.split(".")[0], "base64url").toString());
  check(header.alg === "ES256", `ES256 ID token validated by openid-client (alg ${header.alg})`);
  check(ecTokens.claims().aud === ec.client_id, "ES256 ID token aud");
});

// Last, as it signs the browser out: RP-initiated logout with the URL openid-client builds.
await step("end session", async () => {
  check(config.serverMetadata().end_session_endpoint === new URL("/oauth/logout", issuer).href, "discovery names the end_session_endpoint");
  const grant = await codeFlow(config);
  const live = await client.tokenIntrospection(introspector, grant.access_token);
  check(live.active === true, "end session: the grant is live before");
  const state = client.randomState();
  const postLogout = web.post_logout_redirect_uris[0];
  const url = client.buildEndSessionUrl(config, { id_token_hint: grant.id_token, post_logout_redirect_uri: postLogout, state });
  const res = await browse(url);
  check(res.status === 303 && res.headers.get("location") === `${postLogout}?state=${state}`, `end session: back to the client with state (${res.status} ${res.headers.get("location")})`);
  check(!jar.has("session"), "end session: the browser's gatepass session cookie is cleared");
  const after = await client.tokenIntrospection(introspector, grant.access_token);
  check(after.active === false, "end session: the grant's access token is inactive");
  await refused("refresh after the end of the session", () => client.refreshTokenGrant(config, grant.refresh_token), "invalid_grant");
  // Signed out, the authorization page asks for a sign-in again.
  const again = await browse(client.buildAuthorizationUrl(config, {
    redirect_uri: redirectUri,
    scope: "openid",
    code_challenge: await client.calculatePKCECodeChallenge(client.randomPKCECodeVerifier()),
    code_challenge_method: "S256",
  }));
  const page = await again.text();
  check(again.status === 200 && /<form[^>]*action="\/ui\/login"/.test(page) && !jar.has("session"), `end session: the next authorization shows the sign-in form (${again.status})`);
});

console.log(`openid-client interop: ${failed === 0 ? "ok" : `${failed} failed`}`);
process.exit(failed === 0 ? 0 : 1);
