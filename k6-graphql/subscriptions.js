// Queue subscriptions: SUBSCRIBERS fans wait for their turn with the `queueStatus` subscription
// over a websocket (graphql-transport-ws, /graphql/ws) instead of polling, while the queue admits
// them: connect time, time to the first update, how updates arrive, how late the ACTIVE push is,
// and whether any connection is dropped.
//
// Run it through `scripts/load subscriptions [--subscribers N]` (default 10,000), which starts a
// server admitting N / ADMIT_SECONDS fans per second and writes docs/results/subscriptions.{md,json}.
// By hand:
//   k6 run -e BASE_URL=http://127.0.0.1:18080 -e SUBSCRIBERS=200 -e FANS_PER_VU=20 k6-graphql/subscriptions.js
//
// One fan: enterQueue over HTTP (its token; http.asyncRequest, so a VU's other sockets are not
// held up), then a websocket with subprotocol graphql-transport-ws: `connection_init` with
// {"Authorization": "Bearer <JWT>"} (src/http.rs authenticates there) -> `connection_ack` ->
// `subscribe` {queueStatus(token)} -> `next` messages: the current status at once, then a new one
// whenever the position changes (each admission tick), then ACTIVE. On ACTIVE the fan is done: it
// sends `complete` and closes, as a page would once it moves on to the seats.
// Load model: FANS_PER_VU fans per VU (the event-loop websockets API holds many sockets in one
// VU; 10,000 VUs would cost k6 several GB). Fans arrive spread evenly over CONNECT_SECONDS.
//
// Measured (ms unless said):
//   sub_connect_ms          socket open requested -> open (the HTTP upgrade)
//   sub_ack_ms              open requested -> connection_ack (upgrade + authentication)
//   sub_first_update_ms     subscribe sent -> first `next`
//   sub_update_gap_ms       between consecutive updates of one fan (ticks every QUEUE_TICK_MS)
//   sub_active_push_ms      admitted (activeUntil - ACTIVE_TTL_SECONDS, the server's clock, same
//                           machine) -> ACTIVE received: how late the push that matters arrives
//   sub_wait_seconds        entered -> ACTIVE
//   sub_updates, sub_position_regressions (a position went up), sub_dropped (the server closed a
//   socket or it failed before ACTIVE), sub_errors{kind} (subscription `error` messages, socket
//   errors), sub_not_activated (no ACTIVE by MAX_SECONDS), sub_activated.
// Thresholds: dropped = 0, errors = 0, every fan activated, connect+ack P95 < 1 s, first update
// P95 < 1 s, ACTIVE push P95 < 1 s (a subscriber must learn it is in at least as fast as a fan
// polling every 2 s would), enterQueue failures < 0.5 %.
//
// Env: SUBSCRIBERS (10000), FANS_PER_VU (50), CONNECT_SECONDS (20), MAX_SECONDS (300), CONCERT_ID
//      (1), USER_ID_BASE (2000000), ACTIVE_TTL_SECONDS (900: the server's QUEUE_ACTIVE_TTL_SECONDS),
//      ERROR_LOG_PER_VU (3).
import exec from 'k6/execution';
import http from 'k6/http';
import { WebSocket } from 'k6/experimental/websockets';
import { Counter, Trend } from 'k6/metrics';
import { errorBreakdownThresholds, errorCode, gqlRequest, gqlResult } from './lib/graphql.js';
import { userToken } from './lib/jwt.js';
import { ENTER, STATUS_SUBSCRIPTION } from './lib/operations.js';
import { GRAPHQL_URL, TREND_STATS, WS_URL, envFloat, envInt, envStr, info, latencyMs, logLimited } from './lib/config.js';

const SUBSCRIBERS = envInt('SUBSCRIBERS', 10000);
const FANS_PER_VU = Math.max(1, envInt('FANS_PER_VU', 50));
const CONNECT_SECONDS = envFloat('CONNECT_SECONDS', 20);
const MAX_SECONDS = envFloat('MAX_SECONDS', 300);
const CONCERT_ID = envStr('CONCERT_ID', '1');
const USER_ID_BASE = envInt('USER_ID_BASE', 2000000);
const ACTIVE_TTL_MS = envFloat('ACTIVE_TTL_SECONDS', 900) * 1000;
const ERROR_LOG_PER_VU = envInt('ERROR_LOG_PER_VU', 3);
const VUS = Math.ceil(SUBSCRIBERS / FANS_PER_VU);

const connectMs = new Trend('sub_connect_ms', true);
const ackMs = new Trend('sub_ack_ms', true);
const firstUpdateMs = new Trend('sub_first_update_ms', true);
const updateGapMs = new Trend('sub_update_gap_ms', true);
const activePushMs = new Trend('sub_active_push_ms', true);
const waitSeconds = new Trend('sub_wait_seconds');
const updates = new Counter('sub_updates');
const regressions = new Counter('sub_position_regressions');
const dropped = new Counter('sub_dropped');
const errors = new Counter('sub_errors');
const notActivated = new Counter('sub_not_activated');
const activated = new Counter('sub_activated');
const expired = new Counter('sub_expired');
const subscribed = new Counter('sub_subscribed');

export const options = {
  scenarios: {
    subscribers: {
      executor: 'per-vu-iterations',
      vus: VUS,
      iterations: 1,
      maxDuration: `${Math.ceil(MAX_SECONDS + 60)}s`,
      gracefulStop: '30s',
    },
  },
  summaryTrendStats: TREND_STATS,
  thresholds: Object.assign(
    {},
    info('trend', ['sub_update_gap_ms', 'sub_wait_seconds', 'http_req_duration{op:enterQueue}']),
    info('counter', ['sub_updates', 'sub_position_regressions', 'sub_expired', 'sub_subscribed', 'sub_activated',
      'sub_errors{kind:socket}', 'sub_errors{kind:subscription}', 'sub_errors{kind:protocol}',
      'sub_dropped{stage:connecting}', 'sub_dropped{stage:waiting}']),
    errorBreakdownThresholds(['enterQueue']),
    {
      sub_dropped: ['count<1'],
      sub_errors: ['count<1'],
      sub_not_activated: ['count<1'],
      sub_ack_ms: [`p(95)<${latencyMs(1000)}`],
      sub_first_update_ms: [`p(95)<${latencyMs(1000)}`],
      sub_active_push_ms: [`p(95)<${latencyMs(1000)}`],
      sub_connect_ms: ['max>=0'],
      'graphql_failed{op:enterQueue}': ['rate<0.005'],
    },
  ),
};

export function setup() {
  return { t0: Date.now() };
}

function log(line) {
  logLimited('sub', ERROR_LOG_PER_VU, line);
}

// One fan from entering to ACTIVE. `fans` tracks the open ones for the deadline.
function startFan(userId, fans) {
  const jwt = userToken(userId, { ttlSeconds: 4 * 3600 });
  const fan = { userId, done: false, socket: null, enteredAt: Date.now(), lastUpdate: null, position: null };
  fans.push(fan);
  // With its text: this asynchronous request is not sent again on PERSISTED_QUERY_NOT_FOUND.
  const req = gqlRequest(GRAPHQL_URL, ENTER, { c: CONCERT_ID }, { token: jwt, name: 'enterQueue', text: true });
  http.asyncRequest('POST', req.url, req.body, req.params).then((res) => {
    const r = gqlResult(res, req.params.tags);
    const status = !r.errors && r.data && r.data.enterQueue;
    if (!status || !status.token) {
      fan.done = true;
      notActivated.add(1, { stage: 'enter' });
      log(`enterQueue failed: user=${userId} code=${errorCode(r)}`);
      return;
    }
    connect(fan, jwt, status.token);
  });
}

function connect(fan, jwt, token) {
  const opened = Date.now();
  let subscribedAt = null;
  let closedByUs = false;
  const ws = new WebSocket(WS_URL, 'graphql-transport-ws');
  fan.socket = ws;
  const finish = () => {
    fan.done = true;
    closedByUs = true;
    try {
      ws.send(JSON.stringify({ id: '1', type: 'complete' }));
    } catch (_) {
      // already closing
    }
    ws.close();
  };
  ws.addEventListener('open', () => {
    connectMs.add(Date.now() - opened);
    ws.send(JSON.stringify({ type: 'connection_init', payload: { Authorization: `Bearer ${jwt}` } }));
  });
  ws.addEventListener('message', (e) => {
    let msg;
    try {
      msg = JSON.parse(e.data);
    } catch (_) {
      errors.add(1, { kind: 'protocol' });
      return;
    }
    const now = Date.now();
    switch (msg.type) {
      case 'connection_ack':
        ackMs.add(now - opened);
        subscribedAt = Date.now();
        subscribed.add(1);
        ws.send(JSON.stringify({ id: '1', type: 'subscribe',
          payload: { query: STATUS_SUBSCRIPTION, variables: { t: token } } }));
        return;
      case 'ping':
        ws.send(JSON.stringify({ type: 'pong' }));
        return;
      case 'pong':
        return;
      case 'next': {
        const status = msg.payload && msg.payload.data && msg.payload.data.queueStatus;
        if (!status) {
          errors.add(1, { kind: 'subscription' });
          const code = msg.payload && msg.payload.errors && msg.payload.errors[0] && msg.payload.errors[0].extensions;
          log(`subscription error: user=${fan.userId} ${JSON.stringify(code || msg.payload).slice(0, 200)}`);
          finish();
          return;
        }
        updates.add(1);
        if (fan.lastUpdate === null) firstUpdateMs.add(now - subscribedAt);
        else updateGapMs.add(now - fan.lastUpdate);
        fan.lastUpdate = now;
        if (status.status === 'WAITING') {
          if (fan.position !== null && status.position > fan.position) regressions.add(1);
          fan.position = status.position;
        } else if (status.status === 'ACTIVE') {
          const admitted = Date.parse(status.activeUntil) - ACTIVE_TTL_MS;
          if (!Number.isNaN(admitted)) activePushMs.add(Math.max(0, now - admitted));
          waitSeconds.add((now - fan.enteredAt) / 1000);
          activated.add(1);
          finish();
        } else {
          expired.add(1);
          notActivated.add(1, { stage: 'expired' });
          log(`EXPIRED while subscribed: user=${fan.userId} last position=${fan.position}`);
          finish();
        }
        return;
      }
      case 'error':
        errors.add(1, { kind: 'subscription' });
        log(`subscription error: user=${fan.userId} ${JSON.stringify(msg.payload).slice(0, 200)}`);
        finish();
        return;
      case 'complete':
        if (!fan.done) {
          dropped.add(1, { stage: 'waiting' });
          fan.done = true;
        }
        return;
      default:
        errors.add(1, { kind: 'protocol' });
    }
  });
  ws.addEventListener('error', (e) => {
    if (closedByUs) return;
    errors.add(1, { kind: 'socket' });
    log(`socket error: user=${fan.userId} ${e && e.error}`);
  });
  ws.addEventListener('close', () => {
    if (closedByUs || fan.done) return;
    fan.done = true;
    dropped.add(1, { stage: subscribedAt === null ? 'connecting' : 'waiting' });
    log(`socket closed by the server before ACTIVE: user=${fan.userId} position=${fan.position}`);
  });
}

export default function (data) {
  const vu = exec.vu.idInTest;
  const first = (vu - 1) * FANS_PER_VU;
  const count = Math.min(FANS_PER_VU, SUBSCRIBERS - first);
  const fans = [];
  // Fan i of the whole crowd arrives i / SUBSCRIBERS of the way through CONNECT_SECONDS.
  for (let i = 0; i < count; i++) {
    const index = first + i;
    const at = data.t0 + (index / SUBSCRIBERS) * CONNECT_SECONDS * 1000;
    setTimeout(() => startFan(USER_ID_BASE + index + 1, fans), Math.max(0, at - Date.now()));
  }
  // Whoever is not ACTIVE by the deadline gives up.
  const deadline = data.t0 + MAX_SECONDS * 1000;
  const check = () => {
    if (fans.length === count && fans.every((f) => f.done)) return;
    if (Date.now() >= deadline) {
      for (const f of fans) {
        if (f.done) continue;
        f.done = true;
        notActivated.add(1, { stage: 'timeout' });
        log(`not ACTIVE after ${MAX_SECONDS}s: user=${f.userId} position=${f.position}`);
        if (f.socket) f.socket.close();
      }
      return;
    }
    setTimeout(check, 1000);
  };
  setTimeout(check, 1000);
}
