// Interop checks with the npm package `jose`: gatepass tokens verify through the live JWKS
// (createRemoteJWKSet), and tokens jose signs with a wrong key or algorithm are refused.
//
// usage: node check_jose.mjs BASE_URL ALG ACCESS_TOKEN [HS256_SECRET]
// Prints one `PASS name` / `FAIL name: why` line per check.
import * as jose from 'jose';

const [base, alg, token, secret] = process.argv.slice(2);

function report(name, ok, why = '') {
  console.log(ok ? `PASS jose ${alg}: ${name}` : `FAIL jose ${alg}: ${name}: ${why}`);
}

async function statusOf(t) {
  const r = await fetch(`${base}/api/profile`, { headers: { authorization: `Bearer ${t}` } });
  return r.status;
}

async function expectRefused(name, t) {
  const status = await statusOf(t);
  report(`${name} is refused by gatepass`, status === 401, `status ${status}`);
}

const header = jose.decodeProtectedHeader(token);
const claims = jose.decodeJwt(token);
report('token carries a kid', typeof header.kid === 'string' && header.kid.length > 0, JSON.stringify(header));

// 1. Verification of gatepass's token.
try {
  const options = { issuer: 'gatepass', typ: 'at+jwt', algorithms: [alg], requiredClaims: ['exp', 'iat', 'nbf', 'sub', 'jti'] };
  const key = alg === 'HS256'
    ? new TextEncoder().encode(secret)
    : jose.createRemoteJWKSet(new URL(`${base}/.well-known/jwks.json`));
  const { payload } = await jose.jwtVerify(token, key, options);
  report('gatepass token verifies', payload.sub === claims.sub, 'claims differ');
} catch (e) {
  report('gatepass token verifies', false, String(e));
}

// 2. Forgeries signed by jose with keys gatepass does not trust.
const sign = (a, key, hdr = {}) =>
  new jose.SignJWT(claims).setProtectedHeader({ alg: a, kid: header.kid, typ: 'at+jwt', ...hdr }).sign(key);
for (const a of ['EdDSA', 'ES256', 'RS256']) {
  const { privateKey } = await jose.generateKeyPair(a, { crv: a === 'EdDSA' ? 'Ed25519' : undefined });
  await expectRefused(a === alg ? 'same algorithm, wrong key' : `wrong algorithm ${a}`, await sign(a, privateKey));
}
await expectRefused('HS256 with a wrong secret', await sign('HS256', new TextEncoder().encode('y'.repeat(40))));
const unsecured = new jose.UnsecuredJWT(claims).encode();
await expectRefused('alg none', unsecured);
if (alg !== 'HS256') {
  const jwks = await (await fetch(`${base}/.well-known/jwks.json`)).json();
  const publicKey = await jose.importJWK(jwks.keys[0], alg, { extractable: true });
  const pem = await jose.exportSPKI(publicKey);
  await expectRefused('HS256 keyed with the public key (PEM)', await sign('HS256', new TextEncoder().encode(pem)));
  const jwkText = JSON.stringify(jwks.keys[0]);
  await expectRefused('HS256 keyed with the public JWK', await sign('HS256', new TextEncoder().encode(jwkText)));
  // A token that brings its own key in the header.
  const { privateKey, publicKey: ownPublic } = await jose.generateKeyPair(alg, { crv: alg === 'EdDSA' ? 'Ed25519' : undefined, extractable: true });
  const ownJwk = await jose.exportJWK(ownPublic);
  await expectRefused('embedded jwk header', await sign(alg, privateKey, { jwk: ownJwk }));
}
