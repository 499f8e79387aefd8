// One fan's whole visit, the plan's scenario 5 flow (queue -> reserve -> pay) over every kind of
// endpoint, shared by mixed.js (sustained load), spike.js and breakpoint.js:
//
//   enterQueue(concert)                      mutation, Authorization: Bearer JWT
//   queueStatus(token) every POLL_SECONDS    until ACTIVE (at most MAX_WAIT_SECONDS)
//   concerts(limit, offset)                  the catalogue page listing that concert
//   concert(id) { schedules { availableSeats } }   pick a schedule with seats left
//   schedule(id) { seats }                   the seat map
//   holdSeats(random free seats on the map)  odd journeys; even ones holdBestAvailable(count)
//     on SEAT_UNAVAILABLE (taken since the map was read): holdBestAvailable once
//   pay(reservation, idempotencyKey)         a lost answer (TIMEOUT / NETWORK / BUSY /
//                                            UNAVAILABLE) is retried once with the SAME key
//   me { points reservations }               the fan's page: the booking CONFIRMED, the
//                                            balance equal to the receipt's balanceAfter
//
// That is JOURNEY_REQUESTS (8) GraphQL requests when nothing goes wrong: the runners turn a
// request rate into a journey rate with it, and reports count the requests actually sent.
//
// Journey k (the scenario's iteration number) is fan USER_ID_BASE + 1 + (k mod USERS), in a
// random concert of CONCERTS; with USERS large enough a fan's journeys are minutes apart, so one
// fan never has two at once (no HOLD_ALREADY_EXISTS, no shared balance).
//
// Env: USERS (20000), USER_ID_BASE (0: fans are users 1..USERS, who must exist with points),
//      CONCERTS (1), POLL_SECONDS (1), MAX_WAIT_SECONDS (60), MAX_SEATS_PER_HOLD (2), PAY (1; 0 stops
//      after the hold), RUN_ID (idempotency-key prefix), ERROR_LOG_PER_VU (3).
//
// What is an error: every GraphQL request counts in journey_real_failed (a Rate) unless all its
// error codes are EXPECTED_CODES, business answers a correct system gives under load:
//   SEAT_UNAVAILABLE   a seat chosen on the map was taken meanwhile (or a schedule sold out)
// Nothing else is expected: HOLD_ALREADY_EXISTS, QUEUE_*, INSUFFICIENT_POINTS cannot happen by
// construction, and BUSY / UNAVAILABLE / TIMEOUT / INTERNAL / NETWORK are the system failing.
// (graphql_failed from graphql.js still counts every error, expected or not.)
import { sleep } from 'k6';
import { Counter, Rate, Trend } from 'k6/metrics';
import { errorCode, errorCodes, gql, isRealFailure } from './graphql.js';
import { userToken } from './jwt.js';
import { GRAPHQL_URL, envFloat, envInt, envStr, logLimited } from './config.js';
import { CONCERT, CONCERTS, ENTER, HOLD_BEST, HOLD_SEATS, ME, PAY, SEAT_MAP, STATUS, TRANSIENT_CODES } from './operations.js';

export const EXPECTED_CODES = ['SEAT_UNAVAILABLE'];
export const JOURNEY_REQUESTS = 8;
export const JOURNEY_OPS = ['enterQueue', 'queueStatus', 'concerts', 'concert', 'schedule', 'holdSeats',
  'holdBestAvailable', 'pay', 'me'];
export const OUTCOMES = ['paid', 'held', 'sold_out', 'not_active', 'failed'];

export const journeyMs = new Trend('journey_ms', true); // enterQueue sent -> me answered, paid journeys
export const journeyRealFailed = new Rate('journey_real_failed');
export const journeyOutcomes = new Counter('journey_outcomes');
export const journeyQueueWaitMs = new Trend('journey_queue_wait_ms', true);
export const journeyMeMismatch = new Counter('journey_me_mismatch');
export const journeyPayRetries = new Counter('journey_pay_retries');

export const settings = {
  users: envInt('USERS', 20000),
  userIdBase: envInt('USER_ID_BASE', 0),
  concerts: envInt('CONCERTS', 1),
  pollSeconds: envFloat('POLL_SECONDS', 1),
  maxWaitSeconds: envFloat('MAX_WAIT_SECONDS', 60),
  maxSeatsPerHold: envInt('MAX_SEATS_PER_HOLD', 2),
  pay: envStr('PAY', '1') === '1',
  runId: envStr('RUN_ID', String(Date.now())),
  errorLogPerVu: envInt('ERROR_LOG_PER_VU', 3),
};

// Thresholds that make the journey's sub-metrics show up in the exported summary.
export function journeyInfoThresholds() {
  const t = {
    journey_ms: ['max>=0'],
    journey_queue_wait_ms: ['max>=0'],
    journey_me_mismatch: ['count>=0'],
    journey_pay_retries: ['count>=0'],
    graphql_failed: ['rate>=0'],
    dropped_iterations: ['count>=0'],
    vus: ['value>=0'],
    vus_max: ['value>=0'],
  };
  for (const o of OUTCOMES) t[`journey_outcomes{outcome:${o}}`] = ['count>=0'];
  for (const op of JOURNEY_OPS) {
    t[`http_req_duration{op:${op}}`] = ['max>=0'];
    t[`http_reqs{op:${op}}`] = ['count>=0'];
    t[`journey_real_failed{op:${op}}`] = ['rate>=0'];
  }
  return t;
}

const jwts = {};
function jwtOf(userId) {
  return jwts[userId] || (jwts[userId] = userToken(userId, { ttlSeconds: 4 * 3600 }));
}

function pick(list) {
  return list[Math.floor(Math.random() * list.length)];
}

function sample(list, n) {
  const copy = list.slice();
  const out = [];
  while (out.length < n && copy.length > 0) out.push(copy.splice(Math.floor(Math.random() * copy.length), 1)[0]);
  return out;
}

// Runs journey `k`. `tagsNow()` gives the extra tags of a request sent now (phase, step,
// window); they go on every metric of that request. Returns the outcome.
export function runJourney(k, tagsNow = () => ({})) {
  const s = settings;
  const userId = s.userIdBase + 1 + (k % s.users);
  const concertId = 1 + Math.floor(Math.random() * s.concerts);
  const jwt = jwtOf(userId);
  const started = Date.now();
  const startTags = tagsNow();

  const call = (name, query, variables, extra = {}) => {
    const tags = tagsNow();
    const r = gql(GRAPHQL_URL, query, variables, Object.assign({ token: jwt, name, tags }, extra));
    const failed = isRealFailure(r, EXPECTED_CODES);
    journeyRealFailed.add(failed, Object.assign({ op: name }, tags));
    if (failed) {
      const body = r.res.body ? String(r.res.body).slice(0, 300) : '';
      logLimited('journey', s.errorLogPerVu,
        `journey error: op=${name} user=${userId} status=${r.res.status} code=${errorCode(r)} body=${body}`);
    }
    return r;
  };
  const end = (outcome) => {
    journeyOutcomes.add(1, Object.assign({ outcome }, startTags));
    return outcome;
  };

  // Queue.
  let r = call('enterQueue', ENTER, { c: String(concertId) });
  let status = !r.errors && r.data && r.data.enterQueue;
  if (!status || !status.token) return end('failed');
  const token = status.token;
  const deadline = started + s.maxWaitSeconds * 1000;
  while (status.status === 'WAITING') {
    if (Date.now() > deadline) return end('not_active');
    sleep(s.pollSeconds);
    r = call('queueStatus', STATUS, { t: token });
    if (r.errors) {
      if (TRANSIENT_CODES.indexOf(errorCode(r)) >= 0) continue;
      return end('failed');
    }
    status = r.data.queueStatus;
  }
  if (status.status !== 'ACTIVE') return end('not_active');
  journeyQueueWaitMs.add(Date.now() - started, startTags);
  const q = { queueToken: token };

  // Browse: the catalogue page with this concert, the concert's schedules, one seat map.
  r = call('concerts', CONCERTS, { limit: 20, offset: Math.floor((concertId - 1) / 20) * 20 });
  if (r.errors) return end('failed');
  r = call('concert', CONCERT, { id: String(concertId) });
  const concert = !r.errors && r.data && r.data.concert;
  if (!concert) return end('failed');
  const count = 1 + Math.floor(Math.random() * s.maxSeatsPerHold);
  const open = (concert.schedules || []).filter((x) => x.availableSeats >= count);
  if (open.length === 0) return end('sold_out');
  const scheduleId = pick(open).id;
  r = call('schedule', SEAT_MAP, { id: scheduleId });
  const map = !r.errors && r.data && r.data.schedule;
  if (!map) return end('failed');
  const free = (map.seats || []).filter((x) => x.status === 'AVAILABLE').map((x) => x.id);

  // Hold: seats picked on the map (odd journeys), or any seats (even ones and the fallback).
  let reservation = null;
  if (k % 2 === 1 && free.length >= count) {
    r = call('holdSeats', HOLD_SEATS, { s: scheduleId, seats: sample(free, count) }, q);
    reservation = !r.errors && r.data && r.data.holdSeats;
    if (!reservation && errorCodes(r).some((c) => EXPECTED_CODES.indexOf(c) < 0)) return end('failed');
  }
  if (!reservation) {
    r = call('holdBestAvailable', HOLD_BEST, { s: scheduleId, n: count }, q);
    reservation = !r.errors && r.data && r.data.holdBestAvailable;
    if (!reservation) return end(errorCode(r) === 'SEAT_UNAVAILABLE' ? 'sold_out' : 'failed');
  }
  if (!s.pay) return end('held');

  // Pay, retrying a lost answer once with the same key (the server replays, never charges twice).
  const key = `j-${s.runId}-${reservation.id}`;
  r = call('pay', PAY, { r: reservation.id, k: key }, q);
  if (r.errors && TRANSIENT_CODES.indexOf(errorCode(r)) >= 0) {
    journeyPayRetries.add(1);
    sleep(0.2);
    r = call('pay', PAY, { r: reservation.id, k: key }, q);
  }
  const receipt = !r.errors && r.data && r.data.pay;
  if (!receipt || String(receipt.reservationId) !== String(reservation.id)) return end('failed');

  // The fan's page shows the booking and the balance the receipt said.
  r = call('me', ME, {});
  const me = !r.errors && r.data && r.data.me;
  if (!me) return end('failed');
  const booked = (me.reservations || []).find((x) => String(x.id) === String(reservation.id));
  if (!booked || booked.status !== 'CONFIRMED' || me.points !== receipt.balanceAfter) {
    journeyMeMismatch.add(1);
    logLimited('me', s.errorLogPerVu, `me disagrees with the receipt: user=${userId} reservation=${reservation.id} ` +
      `status=${booked && booked.status} points=${me.points} balanceAfter=${receipt.balanceAfter}`);
  }
  journeyMs.add(Date.now() - started, startTags);
  return end('paid');
}
