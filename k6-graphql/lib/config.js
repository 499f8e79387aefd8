// Settings every scenario reads the same way: where the server is, numbers from the environment,
// k6 duration syntax, time windows for "over time" tables, and threshold helpers.
//
//   import { GRAPHQL_URL, envInt, latencyMs, info } from './lib/config.js';
//
// Smoke runs (scripts/load smoke) set LATENCY_SCALE (10): every latency limit written with
// latencyMs(500) becomes 5,000 ms there, since a debug build on a shared CI machine is not what
// the plan's response times are about; error-rate and integrity thresholds are never scaled.

// BASE_URLS (comma-separated; scripts/load --instances N) spreads the VUs over several server
// instances, round-robin by VU number; otherwise every VU uses BASE_URL.
export const BASE_URLS = (__ENV.BASE_URLS || __ENV.BASE_URL || 'http://127.0.0.1:8080')
  .split(',')
  .map((url) => url.trim().replace(/\/$/, ''))
  .filter((url) => url !== '');
export const BASE_URL = BASE_URLS[(__VU || 0) % BASE_URLS.length];
export const GRAPHQL_URL = `${BASE_URL}/graphql`;
export const WS_URL = `${BASE_URL.replace(/^http/, 'ws')}/graphql/ws`;
export const LATENCY_SCALE = parseFloat(__ENV.LATENCY_SCALE || '1');
export const SMOKE = __ENV.SMOKE === '1';

export const TREND_STATS = ['avg', 'min', 'med', 'p(90)', 'p(95)', 'p(99)', 'max', 'count'];

export function envStr(name, fallback) {
  const v = __ENV[name];
  return v === undefined || v === '' ? fallback : v;
}

export function envInt(name, fallback) {
  const v = parseInt(envStr(name, String(fallback)), 10);
  if (Number.isNaN(v)) throw new Error(`${name} must be an integer`);
  return v;
}

export function envFloat(name, fallback) {
  const v = parseFloat(envStr(name, String(fallback)));
  if (Number.isNaN(v)) throw new Error(`${name} must be a number`);
  return v;
}

// Seconds of 300, 300s, 5m, 1h, 500ms.
export function parseDuration(v) {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(String(v).trim());
  if (!m) throw new Error(`bad duration ${v}`);
  const n = parseFloat(m[1]);
  return { ms: n / 1000, s: n, m: n * 60, h: n * 3600 }[m[2] || 's'];
}

// A latency limit in ms, scaled for smoke runs.
export function latencyMs(ms) {
  return Math.round(ms * LATENCY_SCALE);
}

// `w00`, `w01`, ...: the window of `msSinceStart`, `seconds` long each.
export function windowTag(msSinceStart, seconds = 10) {
  return `w${String(Math.max(0, Math.floor(msSinceStart / 1000 / seconds))).padStart(2, '0')}`;
}

// Thresholds that never fail, so a metric or sub-metric shows up in the exported summary (only
// metrics with thresholds get their sub-metrics exported). kind: trend | rate | counter | gauge.
export function info(kind, names) {
  const expr = { trend: 'max>=0', rate: 'rate>=0', counter: 'count>=0', gauge: 'value>=0' }[kind];
  const t = {};
  for (const n of names) t[n] = [expr];
  return t;
}

// Per-window sub-metrics (by send time) of the request latency, the scenario's failure Rate and
// the request count, for "over time" tables in the report.
export function windowThresholds(windows, failedRate, seconds = 10) {
  const t = {};
  for (let w = 0; w < windows; w++) {
    const tag = windowTag(w * seconds * 1000, seconds);
    t[`http_req_duration{window:${tag}}`] = ['max>=0'];
    t[`http_reqs{window:${tag}}`] = ['count>=0'];
    if (failedRate) t[`${failedRate}{window:${tag}}`] = ['rate>=0'];
  }
  return t;
}

// Logs at most `limit` lines per VU (per `key`), so a failing run does not flood k6.log.
const logged = {};
export function logLimited(key, limit, line) {
  logged[key] = (logged[key] || 0) + 1;
  if (logged[key] <= limit) console.warn(line);
}
