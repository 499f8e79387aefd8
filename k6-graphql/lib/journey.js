// One fan's whole visit, the plan's scenario 5 flow (queue -> reserve -> pay) over every kind of
// endpoint, shared by mixed.js (sustained load), spike.js and breakpoint.js:
//
//   enterQueue(concert)                      mutation, Authorization: Bearer JWT
//   queueStatus(token) until ACTIVE          the next poll after the answer's pollAfterSeconds
//                                            (lib/queue.js: POLL=hint; POLL_SECONDS without a
//                                            hint or with POLL=fixed), at most MAX_WAIT_SECONDS
//   concerts(limit, offset)                  the catalogue page listing that concert
//   concert(id) { schedules { availableSeats } }   pick a schedule with seats left
//   schedule(id) { seats }                   the seat map
//   holdSeats(random free seats on the map)  odd journeys; even ones holdBestAvailable(count)
//     on SEAT_UNAVAILABLE (taken since the map was read): holdBestAvailable once
//   pay(reservation, idempotencyKey)         a lost answer (TIMEOUT / NETWORK / UNAVAILABLE) is
//                                            retried once with the SAME key
//   me { points reservations }               the fan's page: the booking CONFIRMED, the
//                                            balance equal to the receipt's balanceAfter
// SOLD_OUT (enterQueue, the token's status, or a hold) ends the journey as `sold_out`. BUSY (a
// database-bound mutation refused at capacity, with extensions.retryAfterMs) is not an answer:
// the fan waits retryAfterMs and sends the same request again, at most BUSY_RETRIES times (then
// the journey ends `busy`).
//
// That is JOURNEY_REQUESTS (8) GraphQL requests when nothing goes wrong (one poll): the runners
// turn a request rate into a journey rate with it, and reports count the requests actually sent.
//
// Journey k (the scenario's iteration number) is fan USER_ID_BASE + 1 + (k mod USERS), in a
// random concert of CONCERTS; with USERS large enough a fan's journeys are minutes apart, so one
// fan never has two at once (no HOLD_ALREADY_EXISTS, no shared balance).
//
// Env: USERS (20000), USER_ID_BASE (0: fans are users 1..USERS, who must exist with points),
//      CONCERTS (1), POLL (hint | fixed), POLL_SECONDS (1), MAX_WAIT_SECONDS (60),
//      MAX_SEATS_PER_HOLD (2), PAY (1; 0 stops after the hold), UNPAID_SHARE (0: the share of
//      journeys, by k mod 100, that stop after the hold and leave it to expire), BUSY_RETRIES (20),
//      BUSY_FALLBACK_MS (250), RUN_ID (idempotency-key prefix), ERROR_LOG_PER_VU (3).
//
// What is an error: every GraphQL request not answered BUSY counts in journey_real_failed (a
// Rate) unless all its error codes are EXPECTED_CODES, business answers a correct system gives
// under load:
//   SEAT_UNAVAILABLE   a seat chosen on the map was taken meanwhile (or a schedule sold out)
//   SOLD_OUT           the concert has no seat left to sell
// Nothing else is expected: HOLD_ALREADY_EXISTS, QUEUE_*, INSUFFICIENT_POINTS cannot happen by
// construction, and UNAVAILABLE / TIMEOUT / INTERNAL / NETWORK are the system failing. BUSY
// answers are counted apart (journey_busy{op}, their latency in journey_busy_ms), and
// journey_answer_ms is the latency of every request not answered BUSY. (graphql_failed from
// graphql.js still counts every error, expected or not.)
import { sleep } from 'k6';
import { Counter, Rate, Trend } from 'k6/metrics';
import { errorCode, errorCodes, gql, isRealFailure, retryAfterMs } from './graphql.js';
import { userToken } from './jwt.js';
import { GRAPHQL_URL, envFloat, envInt, envStr, logLimited } from './config.js';
import { CONCERT, CONCERTS, ENTER, HOLD_BEST, HOLD_SEATS, ME, PAY, SEAT_MAP, STATUS, TRANSIENT_CODES } from './operations.js';
import { busyDelayMs, isBusy, isSoldOut, pollDelaySeconds, pollHint } from './queue.js';

export const EXPECTED_CODES = ['SEAT_UNAVAILABLE', 'SOLD_OUT'];
export const JOURNEY_REQUESTS = 8;
export const JOURNEY_OPS = ['enterQueue', 'queueStatus', 'concerts', 'concert', 'schedule', 'holdSeats',
  'holdBestAvailable', 'pay', 'me'];
export const OUTCOMES = ['paid', 'held', 'sold_out', 'not_active', 'busy', 'failed'];

export const journeyMs = new Trend('journey_ms', true); // enterQueue sent -> me answered, paid journeys
// ACTIVE seen -> me answered (paid journeys; held ones with PAY=0): the journey once admitted.
export const journeyActiveMs = new Trend('journey_active_ms', true);
export const journeyAnswerMs = new Trend('journey_answer_ms', true); // every request not answered BUSY
export const journeyBusy = new Counter('journey_busy');
export const journeyBusyMs = new Trend('journey_busy_ms', true);
export const journeyBusyNoHint = new Counter('journey_busy_without_hint');
export const journeyPollAfter = new Trend('journey_poll_after_seconds');
export const journeyPollHintMissing = new Counter('journey_poll_hint_missing');
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
  unpaidShare: envFloat('UNPAID_SHARE', 0),
  busyRetries: envInt('BUSY_RETRIES', 20),
  runId: envStr('RUN_ID', String(Date.now())),
  errorLogPerVu: envInt('ERROR_LOG_PER_VU', 3),
};

// Thresholds that make the journey's sub-metrics show up in the exported summary.
export function journeyInfoThresholds() {
  const t = {
    journey_ms: ['max>=0'],
    journey_active_ms: ['max>=0'],
    journey_answer_ms: ['max>=0'],
    journey_busy_ms: ['max>=0'],
    journey_busy_without_hint: ['count>=0'],
    journey_poll_after_seconds: ['max>=0'],
    journey_poll_hint_missing: ['count>=0'],
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
    t[`journey_busy{op:${op}}`] = ['count>=0'];
    t[`journey_busy_ms{op:${op}}`] = ['max>=0'];
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

// One GraphQL request of a journey, sent again after each BUSY (retryAfterMs) up to BUSY_RETRIES
// times; the answer that ended it (still BUSY when the retries ran out).
function request(j, name, query, variables, extra = {}) {
  const s = settings;
  for (let tries = 0; ; tries++) {
    const tags = j.tagsNow();
    const r = gql(GRAPHQL_URL, query, variables, Object.assign({ token: j.jwt, name, tags }, extra));
    if (j.onAnswer) j.onAnswer(name, r);
    const opTags = Object.assign({ op: name }, tags);
    if (isBusy(r)) {
      journeyBusy.add(1, opTags);
      journeyBusyMs.add(r.res.timings.duration, opTags);
      if (retryAfterMs(r) === null) journeyBusyNoHint.add(1, opTags);
      if (tries >= s.busyRetries) return r;
      sleep(busyDelayMs(r) / 1000);
      continue;
    }
    journeyAnswerMs.add(r.res.timings.duration, opTags);
    const failed = isRealFailure(r, EXPECTED_CODES);
    journeyRealFailed.add(failed, opTags);
    if (failed) {
      const body = r.res.body ? String(r.res.body).slice(0, 300) : '';
      logLimited('journey', s.errorLogPerVu,
        `journey error: op=${name} user=${j.userId} status=${r.res.status} code=${errorCode(r)} body=${body}`);
    }
    return r;
  }
}

// The outcome of a request that did not give what the journey needs.
function failure(r) {
  if (isBusy(r)) return 'busy';
  if (isSoldOut(r)) return 'sold_out';
  return 'failed';
}

// enterQueue, then queueStatus after each hint until ACTIVE: { token } or { outcome }.
function queue(j, concertId, deadline) {
  const s = settings;
  let r = request(j, 'enterQueue', ENTER, { c: String(concertId) });
  let status = !r.errors && r.data && r.data.enterQueue;
  if (!status || !status.token) return { outcome: failure(r) };
  while (status.status === 'WAITING') {
    if (Date.now() > deadline) return { outcome: 'not_active' };
    const hint = pollHint(status);
    if (hint === null) journeyPollHintMissing.add(1);
    else journeyPollAfter.add(hint);
    sleep(pollDelaySeconds(status, s.pollSeconds));
    r = request(j, 'queueStatus', STATUS, { t: status.token });
    if (r.errors) {
      if (TRANSIENT_CODES.indexOf(errorCode(r)) >= 0) continue;
      return { outcome: 'failed' };
    }
    status = Object.assign({ token: status.token }, r.data.queueStatus);
  }
  if (status.status === 'SOLD_OUT') return { outcome: 'sold_out' };
  if (status.status !== 'ACTIVE') return { outcome: 'not_active' };
  return { token: status.token };
}

// Seats picked on the map (odd journeys), or any seats (even ones and the fallback): the
// reservation, or { outcome }.
function hold(j, k, scheduleId, free, count, q) {
  let r;
  if (k % 2 === 1 && free.length >= count) {
    r = request(j, 'holdSeats', HOLD_SEATS, { s: scheduleId, seats: sample(free, count) }, q);
    const reservation = !r.errors && r.data && r.data.holdSeats;
    if (reservation) return reservation;
    if (isBusy(r) || isSoldOut(r)) return { outcome: failure(r) };
    if (errorCodes(r).some((c) => EXPECTED_CODES.indexOf(c) < 0)) return { outcome: 'failed' };
  }
  r = request(j, 'holdBestAvailable', HOLD_BEST, { s: scheduleId, n: count }, q);
  const reservation = !r.errors && r.data && r.data.holdBestAvailable;
  if (reservation) return reservation;
  return { outcome: errorCode(r) === 'SEAT_UNAVAILABLE' ? 'sold_out' : failure(r) };
}

// Runs journey `k`. `tagsNow()` gives the extra tags of a request sent now (phase, step,
// window); they go on every metric of that request. `onAnswer(op, result)`, when given, sees every
// answer (BUSY ones included) as it comes. Returns the outcome.
export function runJourney(k, tagsNow = () => ({}), onAnswer = null) {
  const s = settings;
  const userId = s.userIdBase + 1 + (k % s.users);
  const concertId = 1 + Math.floor(Math.random() * s.concerts);
  const j = { userId, jwt: jwtOf(userId), tagsNow, onAnswer };
  const started = Date.now();
  const startTags = tagsNow();
  const call = (name, query, variables, extra) => request(j, name, query, variables, extra);
  const end = (outcome) => {
    journeyOutcomes.add(1, Object.assign({ outcome }, startTags));
    return outcome;
  };

  // Queue.
  const admitted = queue(j, concertId, started + s.maxWaitSeconds * 1000);
  if (!admitted.token) return end(admitted.outcome);
  const activeAt = Date.now();
  journeyQueueWaitMs.add(activeAt - started, startTags);
  const q = { queueToken: admitted.token };

  // Browse: the catalogue page with this concert, the concert's schedules, one seat map.
  let r = call('concerts', CONCERTS, { limit: 20, offset: Math.floor((concertId - 1) / 20) * 20 });
  if (r.errors) return end(failure(r));
  r = call('concert', CONCERT, { id: String(concertId) });
  const concert = !r.errors && r.data && r.data.concert;
  if (!concert) return end(failure(r));
  const count = 1 + Math.floor(Math.random() * s.maxSeatsPerHold);
  const open = (concert.schedules || []).filter((x) => x.availableSeats >= count);
  if (open.length === 0) return end('sold_out');
  const scheduleId = pick(open).id;
  r = call('schedule', SEAT_MAP, { id: scheduleId });
  const map = !r.errors && r.data && r.data.schedule;
  if (!map) return end(failure(r));
  const free = (map.seats || []).filter((x) => x.status === 'AVAILABLE').map((x) => x.id);

  const reservation = hold(j, k, scheduleId, free, count, q);
  if (reservation.outcome) return end(reservation.outcome);
  if (!s.pay || k % 100 < s.unpaidShare * 100) {
    journeyActiveMs.add(Date.now() - activeAt, startTags);
    return end('held');
  }

  // Pay, retrying a lost answer once with the same key (the server replays, never charges twice).
  const key = `j-${s.runId}-${reservation.id}`;
  r = call('pay', PAY, { r: reservation.id, k: key }, q);
  if (r.errors && !isBusy(r) && TRANSIENT_CODES.indexOf(errorCode(r)) >= 0) {
    journeyPayRetries.add(1);
    sleep(0.2);
    r = call('pay', PAY, { r: reservation.id, k: key }, q);
  }
  const receipt = !r.errors && r.data && r.data.pay;
  if (!receipt || String(receipt.reservationId) !== String(reservation.id)) return end(failure(r));

  // The fan's page shows the booking and the balance the receipt said.
  r = call('me', ME, {});
  const me = !r.errors && r.data && r.data.me;
  if (!me) return end(failure(r));
  const booked = (me.reservations || []).find((x) => String(x.id) === String(reservation.id));
  if (!booked || booked.status !== 'CONFIRMED' || me.points !== receipt.balanceAfter) {
    journeyMeMismatch.add(1);
    logLimited('me', s.errorLogPerVu, `me disagrees with the receipt: user=${userId} reservation=${reservation.id} ` +
      `status=${booked && booked.status} points=${me.points} balanceAfter=${receipt.balanceAfter}`);
  }
  const now = Date.now();
  journeyMs.add(now - started, startTags);
  journeyActiveMs.add(now - activeAt, startTags);
  return end('paid');
}
