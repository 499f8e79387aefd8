// GraphQL over HTTP for k6, with the failure accounting every concert-reservation scenario uses.
//
//   import { gql, gqlBatch } from './lib/graphql.js';
//   const { data, errors, res } = gql(URL, 'query($t: String!) { queueStatus(token: $t) { status } }',
//                                     { t }, { token: jwt, name: 'queueStatus' });
//
// GraphQL answers errors with HTTP 200 and `errors[].extensions.code`, so HTTP status alone says
// little. Every response is therefore classified here:
//   graphql_failed  Rate     true when HTTP != 200, the body is not JSON, or it has `errors`
//   graphql_errors  Counter  one per error, tagged {op, code}; codes of failures that carry no
//                            GraphQL error: NETWORK (no response), HTTP_<status>, BAD_JSON, NO_CODE
// and every request is tagged `op` (the operation name), so thresholds can select e.g.
// `http_req_duration{op:queueStatus}`.
import http from 'k6/http';
import crypto from 'k6/crypto';
import { Counter, Rate } from 'k6/metrics';

export const graphqlErrors = new Counter('graphql_errors');
export const graphqlFailed = new Rate('graphql_failed');

// Every code the server documents (src/error.rs), plus the client-side ones above. Scenarios use
// this to declare per-code sub-metrics, which is how they get into the end-of-test summary.
export const ERROR_CODES = [
  'INVALID_INPUT', 'NOT_FOUND', 'UNAVAILABLE', 'INTERNAL', 'BAD_REQUEST', 'PAYLOAD_TOO_LARGE',
  'BATCH_TOO_LARGE', 'TIMEOUT', 'GRAPHQL_PARSE_FAILED', 'GRAPHQL_VALIDATION_FAILED',
  'QUERY_TOO_DEEP', 'QUERY_TOO_COMPLEX', 'TOO_MANY_DIRECTIVES', 'TOO_MANY_ALIASES',
  'INTROSPECTION_DISABLED', 'PERSISTED_QUERY_NOT_FOUND', 'PERSISTED_QUERY_NOT_ALLOWED', 'BAD_USER_INPUT',
  'UNAUTHENTICATED', 'QUEUE_TOKEN_REQUIRED', 'QUEUE_TOKEN_INVALID', 'QUEUE_NOT_ACTIVE',
  'QUEUE_TOKEN_EXPIRED', 'QUEUE_UNAVAILABLE',
  'SEAT_UNAVAILABLE', 'SOLD_OUT', 'HOLD_ALREADY_EXISTS', 'BUSY', 'HOLD_EXPIRED', 'HOLD_CANCELLED',
  'ALREADY_PAID', 'INSUFFICIENT_POINTS', 'NOT_OWNER', 'IDEMPOTENCY_KEY_REUSED',
  'FORBIDDEN', 'SEAT_MAP_EXISTS', 'SALE_STARTED', 'SALE_NOT_OPEN', 'SALE_CLOSED', 'NOT_REFUNDABLE',
  'TICKET_LIMIT',
  'NETWORK', 'HTTP_400', 'HTTP_413', 'HTTP_429', 'HTTP_500', 'HTTP_502', 'HTTP_503', 'HTTP_504',
  'BAD_JSON', 'NO_CODE',
];

// Thresholds that never fail but make `graphql_errors{code:X}` (and {op:Y}) show up in the
// summary / --summary-export. Spread into options.thresholds.
export function errorBreakdownThresholds(ops = []) {
  const t = {};
  for (const code of ERROR_CODES) t[`graphql_errors{code:${code}}`] = ['count>=0'];
  for (const op of ops) t[`graphql_errors{op:${op}}`] = ['count>=0'];
  return t;
}

// Automatic persisted queries (README, "Persisted queries"), as Apollo clients send them: the
// first time a VU sends a document it sends the text with its SHA-256; after that the hash alone.
// An instance that has not seen the hash answers PERSISTED_QUERY_NOT_FOUND and the request is
// sent again at once with the text (not counted as an error). APQ=0 sends the text every time.
const APQ = (__ENV.APQ || '1') !== '0';
const hashes = new Map(); // query -> hex SHA-256
const registered = new Set(); // hashes this VU has sent with their text

function hashOf(query) {
  let hash = hashes.get(query);
  if (!hash) {
    hash = crypto.sha256(query, 'hex');
    hashes.set(query, hash);
  }
  return hash;
}

// The JSON body of one operation: with its text, or (APQ, once registered) its hash alone.
function body(query, variables, withText) {
  const b = { variables: variables || {} };
  if (withText || !APQ) b.query = query;
  if (APQ) b.extensions = { persistedQuery: { version: 1, sha256Hash: hashOf(query) } };
  return JSON.stringify(b);
}

// The http.request arguments of one operation (for http.batch).
export function gqlRequest(url, query, variables, opts = {}) {
  const headers = { 'Content-Type': 'application/json' };
  if (opts.token) headers.Authorization = `Bearer ${opts.token}`;
  if (opts.queueToken) headers['Queue-Token'] = opts.queueToken;
  const op = opts.name || 'anonymous';
  const params = { headers, tags: Object.assign({}, opts.tags || {}, { op }) };
  if (opts.timeout) params.timeout = opts.timeout;
  // opts.text: always send the text (a caller that cannot send the request again).
  const withText = opts.text === true || !registered.has(hashOf(query));
  if (APQ && withText) registered.add(hashOf(query));
  return {
    method: 'POST',
    url,
    body: body(query, variables, withText),
    params,
    apq: { query, variables, hashOnly: APQ && !withText },
  };
}

// A hash-only request the server did not know: sent again with its text.
function unknownHash(req, res) {
  return req.apq && req.apq.hashOnly && res.status === 200
    && typeof res.body === 'string' && res.body.indexOf('PERSISTED_QUERY_NOT_FOUND') >= 0;
}

function withText(req) {
  return { method: req.method, url: req.url, body: body(req.apq.query, req.apq.variables, true), params: req.params };
}

// Classifies one response; `tags` are the request's tags (at least { op }), also put on
// graphql_failed and graphql_errors. Returns { data, errors, res }.
export function gqlResult(res, tags) {
  let body = null;
  let errors = null;
  let data = null;
  const tagged = (code) => Object.assign({}, tags, { code });
  if (res.status === 0) {
    errors = [{ message: res.error || 'no response', extensions: { code: 'NETWORK' } }];
  } else {
    try {
      body = JSON.parse(res.body);
    } catch (_) {
      body = null;
    }
    if (body && typeof body === 'object') {
      data = body.data === undefined ? null : body.data;
      if (Array.isArray(body.errors) && body.errors.length > 0) errors = body.errors;
    }
    if (!errors && res.status !== 200) {
      errors = [{ message: `HTTP ${res.status}`, extensions: { code: `HTTP_${res.status}` } }];
    } else if (!errors && body === null) {
      errors = [{ message: 'response is not JSON', extensions: { code: 'BAD_JSON' } }];
    }
  }
  if (errors) {
    for (const e of errors) {
      const code = (e && e.extensions && e.extensions.code) || 'NO_CODE';
      graphqlErrors.add(1, tagged(code));
    }
  }
  graphqlFailed.add(res.status !== 200 || errors !== null, tags);
  return { data, errors, res };
}

// One operation. opts: { token (JWT), queueToken (Queue-Token header), name (op tag), tags (extra
// request tags, also put on graphql_failed/graphql_errors), timeout }.
export function gql(url, query, variables, opts = {}) {
  const req = gqlRequest(url, query, variables, opts);
  let res = http.post(req.url, req.body, req.params);
  if (unknownHash(req, res)) res = http.post(req.url, withText(req).body, req.params);
  return gqlResult(res, req.params.tags);
}

// Several operations in parallel (http.batch): ops is [{ query, variables, token, queueToken,
// name }]; returns the results in the same order. Parallelism is capped by options.batch and
// options.batchPerHost (k6 defaults 20 and 6): raise them to the batch size you need.
export function gqlBatch(url, ops) {
  const reqs = ops.map((o) => gqlRequest(url, o.query, o.variables, o));
  const responses = http.batch(reqs.map(({ method, url: u, body: b, params }) => ({ method, url: u, body: b, params })));
  const again = reqs.map((req, i) => (unknownHash(req, responses[i]) ? i : -1)).filter((i) => i >= 0);
  if (again.length > 0) {
    const retried = http.batch(again.map((i) => withText(reqs[i])));
    again.forEach((i, k) => { responses[i] = retried[k]; });
  }
  return responses.map((res, i) => gqlResult(res, reqs[i].params.tags));
}

// First error code of a result, or null.
export function errorCode(result) {
  const e = result.errors && result.errors[0];
  return e ? (e.extensions && e.extensions.code) || 'NO_CODE' : null;
}

// Every error code of a result ([] when it has none).
export function errorCodes(result) {
  return (result.errors || []).map((e) => (e && e.extensions && e.extensions.code) || 'NO_CODE');
}

// True when any error of a result has this code.
export function hasCode(result, code) {
  return errorCodes(result).indexOf(code) >= 0;
}

// `extensions.retryAfterMs` of the first error that carries one (a BUSY answer: how long the
// client waits before it tries again), or null when no error says.
export function retryAfterMs(result) {
  for (const e of result.errors || []) {
    const ms = e && e.extensions && e.extensions.retryAfterMs;
    if (typeof ms === 'number' && ms >= 0) return ms;
  }
  return null;
}

// True when a result failed for a reason other than the business outcomes in `expected` (codes a
// scenario counts as a normal answer, e.g. SEAT_UNAVAILABLE in a stampede): HTTP != 200 without
// such a code, no response, a body that is not JSON, or any error code not in `expected`.
// graphql_failed still counts every error; scenarios add this to a Rate of their own.
export function isRealFailure(result, expected = []) {
  if (!result.errors) return result.res.status !== 200;
  return errorCodes(result).some((code) => expected.indexOf(code) < 0);
}

