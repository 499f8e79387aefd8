// HS256 access tokens for concert-reservation, minted inside k6 (no external tooling).
//
//   import { mintJwt, userToken } from './lib/jwt.js';
//   const jwt = userToken(42);                          // sub "42", 1 h, secret from JWT_SECRET
//   const jwt2 = mintJwt({ sub: '7' }, { secret, ttlSeconds: 60 });
//
// The server checks: HS256 signature with JWT_SECRET, iss = aud = JWT_ISSUER/JWT_AUDIENCE
// ("concert-reservation"), exp in the future, sub a positive decimal user id.
import crypto from 'k6/crypto';
import encoding from 'k6/encoding';

export const DEFAULT_SECRET = __ENV.JWT_SECRET || 'dev-secret-change-me';
export const DEFAULT_ISSUER = __ENV.JWT_ISSUER || 'concert-reservation';
export const DEFAULT_AUDIENCE = __ENV.JWT_AUDIENCE || 'concert-reservation';

const HEADER = encoding.b64encode(JSON.stringify({ alg: 'HS256', typ: 'JWT' }), 'rawurl');

// Signs `claims` (iat/exp/iss/aud are filled in unless given).
export function mintJwt(claims, opts = {}) {
  const secret = opts.secret || DEFAULT_SECRET;
  const now = Math.floor(Date.now() / 1000);
  const body = Object.assign(
    {
      iss: opts.issuer || DEFAULT_ISSUER,
      aud: opts.audience || DEFAULT_AUDIENCE,
      iat: now,
      exp: now + (opts.ttlSeconds || 3600),
    },
    claims,
  );
  const signingInput = `${HEADER}.${encoding.b64encode(JSON.stringify(body), 'rawurl')}`;
  const signature = crypto.hmac('sha256', secret, signingInput, 'binary');
  return `${signingInput}.${encoding.b64encode(signature, 'rawurl')}`;
}

// A token for user `userId` (a positive integer; no database row is needed for the queue).
export function userToken(userId, opts = {}) {
  return mintJwt({ sub: String(userId) }, opts);
}
