// Scenario 1 of the load-test plan (docs/load-test-plan.md, "Seat reservation stampede"): USERS
// fans (10,000) contend for SEATS seats (50) of one schedule, 200 : 1, for at most MAX_SECONDS
// (300), through the waiting queue as the product runs it.
//
// Run it through `scripts/load seat-stampede [--users N]`, which seeds a database with one concert,
// one schedule of 50 seats and users 1..N, starts a release server with the product's queue
// defaults (adaptive admission under QUEUE_ADMIT_PER_SECOND 50/s, at most QUEUE_ACTIVE_CAP 500
// ACTIVE; only HOLD_TTL_SECONDS is raised, so the holds outlive the run and the checks after it),
// checks the database after the run (nothing oversold) and writes
// docs/results/seat-stampede.{md,json}. By hand, against such a database:
//   k6 run -e BASE_URL=http://127.0.0.1:18080 -e USERS=500 -e SEATS=50 k6-graphql/seat-stampede.js
//
// Flow of one fan, as in the plan (REST step -> GraphQL operation):
//   get a queue token          enterQueue(concertId)                  (Authorization: Bearer JWT)
//   poll until ACTIVE          queueStatus(token), next poll after the answer's pollAfterSeconds
//                              (POLL=hint; POLL_SECONDS when the answer has none; POLL=fixed:
//                              every POLL_SECONDS from the previous poll, the plan's way)
//   list schedules             concert(id) { schedules { id } }       (the first schedule is the show)
//   list seats                 schedule(id) { seats { id status } }
//   reserve                    holdSeats(scheduleId, [one seat])      (+ Queue-Token header)
// Seat choice (MODE): `seat` (default) — holdSeats of one seat picked at random among those the
// fan's seat map shows AVAILABLE: the literal "pick a seat on the map" and the hardest case for
// the locks, since the admitted fans aim at the same few seats; `best` — holdBestAvailable(count:
// 1), every fan asks for "any seat" and the server picks (FOR UPDATE SKIP LOCKED walks past locked
// rows); `mix` — odd user ids `seat`, even ones `best`. A fan whose hold answers SEAT_UNAVAILABLE
// reloads the seat map and tries again, at most MAX_ATTEMPTS holds in all.
//
// How a fan learns it has no seat (lib/queue.js has the contract), each an expected answer:
//   SOLD_OUT from enterQueue (an error code), from queueStatus (the WAITING token's status) or
//   from a hold (an error code); a seat map with no AVAILABLE seat (what a real page shows); or
//   MAX_ATTEMPTS holds answered SEAT_UNAVAILABLE ("lost"). The fan stops there: it does not wait
//   for the queue to reopen. BUSY (with extensions.retryAfterMs) from any request is not an
//   answer: the fan waits retryAfterMs and sends the same request again, until MAX_SECONDS.
//
// "Every fan without a seat learned it within 2 s of the last seat going": k6 records the epoch
// ms of every successful hold (stampede_hold_ok_epoch_ms) and, for every fan that stopped without
// a seat, the epoch ms of the answer that told it (stampede_sold_out_learned_epoch_ms, tagged
// `via`: enterQueue | queueStatus | hold | seat_map | lost). The report computes
// max(learned) - max(hold ok) and judges it < 2 s; fans that stopped on a failure or were never
// told (stampede_fans_failed, stampede_fans_not_active) fail that goal too.
//
// Load model: as in queue-wave.js, 10,000 VUs would cost ~4.7 GB and most of a core in k6 on this
// 2-vCPU machine, so each VU plays USERS_PER_VU fans (10: 1,000 VUs). Each fan is a small state
// machine; in every round the VU sends the next request of each of its fans that is due, all in
// one parallel http.batch (each on its own connection), then sleeps until the next fan is due.
// The booking steps (schedules -> seats -> hold -> retry) follow each other with no think time,
// so a fan's next step waits at most for the slowest request of its VU's batch. All VUs start
// together (per-vu-iterations), so all fans enter in the same instant. USERS_PER_VU=1 gives one VU
// per fan.
//
// What is an error. SEAT_UNAVAILABLE and SOLD_OUT are the expected answers of 9,950 of the 10,000
// fans: business outcomes, not failures. BUSY is a fast refusal that the fan retries: counted
// apart (stampede_busy{op}, the latency of those answers in stampede_busy_ms) and left out of the
// error rate and of the hold latency. So the plan's "error rate" is computed over real failures
// only (stampede_real_failed: HTTP != 200, no response, bad JSON, or any error code other than
// SEAT_UNAVAILABLE / SOLD_OUT, over every request that was not answered BUSY). graphql_failed
// (from lib/graphql.js) still counts every error response and is reported but not judged.
//
// Env: BASE_URL (http://127.0.0.1:8080), USERS (10000), USERS_PER_VU (10), SEATS (50: seats of the
//      schedule; the test expects min(SEATS, USERS) holds), EXPECTED_HOLDS (that number),
//      CONCERT_ID (1), USER_ID_BASE (0: fans are users BASE+1 .. BASE+USERS, who must exist in the
//      database), MODE (seat | best | mix), MAX_ATTEMPTS (3), POLL (hint | fixed), POLL_SECONDS (2:
//      the interval without a hint), BUSY_FALLBACK_MS (250: the wait after a BUSY without
//      retryAfterMs), MAX_SECONDS (300: a fan not done by then stops), JWT_SECRET,
//      ERROR_LOG_PER_VU (2).
//
// Thresholds (plan, scenario 1 and success criteria; issue 12's targets for the queue-metered run):
//   stampede_hold_ms p(95) < 500         reservation (hold request) latency, every answered hold
//   stampede_hold_ms p(99) < 1000        the row locks are taken in the hold request (FOR UPDATE
//                                        SKIP LOCKED), so this also bounds lock acquisition (the
//                                        plan asks < 5 s)
//   stampede_holds_ok count == EXPECTED  exactly 50 fans got a seat: no lost sale, no oversell
//   stampede_real_failed rate < 0.5 %    error rate over real failures (see above)
//   stampede_hold_answered rate > 99.9 % "lock success": a hold got a definite answer (held,
//                                        SEAT_UNAVAILABLE or SOLD_OUT), not TIMEOUT/UNAVAILABLE/...
//   stampede_fans_not_active count < 1   every fan was either admitted or told SOLD_OUT
// The report adds: sold out learned within 2 s, server RSS < 300 MB, BUSY answers, SQL checks.
//
// Scheduled opening (OPENING=1; `scripts/load opening`, docs/load-test-plan.md "Scheduled
// opening"): the same fans, but the sale is set up by an organiser and opens at a set time.
// setup() creates the concert, a performance whose pre-queue opens now and whose sale opens
// OPENS_IN_SECONDS (30) later, lays out its SEATS seats, asks the capacity planner for the queue
// settings (capacityPlan with BOOKING_CAPACITY, PLAN_SECONDS_TO_BUY, PLAN_CONVERSION and the
// run's SEATS and USERS) and sets them on the concert (setQueueSettings), all with an organiser
// token (lib/opening.js). The fans enter at once, during the pre-queue: enterQueue answers
// PREQUEUE (no position) and each fan polls when pollAfterSeconds says; at the opening the server
// shuffles them, and from then on each fan is the stampede's fan above. An enterQueue answered
// SALE_NOT_OPEN (the pre-queue not open yet) is sent again when the answer's prequeueOpensAt
// says, and is not a failure. MAX_SECONDS counts from the opening. In this mode:
//   opening_active_before_open count < 1   no fan saw ACTIVE, and no admission time (activeUntil
//                                          minus the concert's activeTtlSeconds) was, before the
//                                          sale's opening
// and each fan's record goes to the console as one line, for the report to compute what the
// summary cannot (place in line, admission time, waits):
//   fan <user> <enter answered ms> <enter status> <admitted ms> <ACTIVE seen ms> <first position
//       after the opening> <hold ms> <outcome> <via>             ('-' where there is none)
// with `opening key=value ...` (the sale and the plan, from setup()) and `queue-opening
// key=value ...` (the server's queueOpening answer, from teardown()).
import exec from 'k6/execution';
import { sleep } from 'k6';
import { Counter, Rate, Trend } from 'k6/metrics';
import {
  ERROR_CODES, errorBreakdownThresholds, errorCode, gqlBatch, isRealFailure, retryAfterMs,
} from './lib/graphql.js';
import { userToken } from './lib/jwt.js';
import { BASE_URL, envFloat, latencyMs } from './lib/config.js';
import { organiserToken, queueOpening, scheduleOnSale } from './lib/opening.js';
import { POLL_MODE, busyDelayMs, isBusy, isSoldOut, pollDelaySeconds, pollHint } from './lib/queue.js';

const URL = `${BASE_URL}/graphql`;
const USERS = parseInt(__ENV.USERS || '10000', 10);
const USERS_PER_VU = Math.max(1, parseInt(__ENV.USERS_PER_VU || '10', 10));
const SEATS = parseInt(__ENV.SEATS || '50', 10);
const EXPECTED_HOLDS = parseInt(__ENV.EXPECTED_HOLDS || String(Math.min(SEATS, USERS)), 10);
const CONCERT_ID = __ENV.CONCERT_ID || '1';
const USER_ID_BASE = parseInt(__ENV.USER_ID_BASE || '0', 10);
const MODE = __ENV.MODE || 'seat';
const MAX_ATTEMPTS = Math.max(1, parseInt(__ENV.MAX_ATTEMPTS || '3', 10));
const POLL_SECONDS = parseFloat(__ENV.POLL_SECONDS || '2');
const MAX_SECONDS = parseFloat(__ENV.MAX_SECONDS || '300');
const ERROR_LOG_PER_VU = parseInt(__ENV.ERROR_LOG_PER_VU || '2', 10);
const VUS = Math.ceil(USERS / USERS_PER_VU);
if (['seat', 'best', 'mix'].indexOf(MODE) < 0) throw new Error(`MODE must be seat, best or mix, not ${MODE}`);
// Scheduled opening (see the header).
const OPENING = __ENV.OPENING === '1';
const OPENS_IN_SECONDS = envFloat('OPENS_IN_SECONDS', 30);
const PLAN = { bookingCapacity: envFloat('BOOKING_CAPACITY', 740), secondsToBuy: envFloat('PLAN_SECONDS_TO_BUY', 60),
  slowestSecondsToBuy: envFloat('PLAN_SLOWEST_SECONDS_TO_BUY', 60), conversion: envFloat('PLAN_CONVERSION', 1) };

// Business outcomes that are answers, not failures.
const EXPECTED_CODES = ['SEAT_UNAVAILABLE', 'SOLD_OUT'];
const OPS = ['enterQueue', 'queueStatus', 'concert', 'schedule', 'holdSeats', 'holdBestAvailable'];
// How a fan without a seat learned it.
const VIA = ['enterQueue', 'queueStatus', 'hold', 'seat_map', 'lost'];

const ENTER = `mutation enterQueue($c: ID!) {
  enterQueue(concertId: $c) { token status position activeUntil pollAfterSeconds }
}`;
const STATUS = `query queueStatus($t: String!) {
  queueStatus(token: $t) { status position activeUntil pollAfterSeconds }
}`;
const CONCERT = `query concert($c: ID!) { concert(id: $c) { schedules { id } } }`;
const SEAT_MAP = `query schedule($s: ID!) { schedule(id: $s) { seats { id status } } }`;
const HOLD = `mutation holdSeats($s: ID!, $seats: [ID!]!) {
  holdSeats(scheduleId: $s, seatIds: $seats) { id status totalPrice expiresAt }
}`;
const BEST = `mutation holdBestAvailable($s: ID!, $n: Int!) {
  holdBestAvailable(scheduleId: $s, count: $n) { id status totalPrice expiresAt }
}`;

// Every answered hold attempt (both kinds; BUSY answers are not attempts), and by answer.
const holdMs = new Trend('stampede_hold_ms', true);
const holdOkMs = new Trend('stampede_hold_ok_ms', true);
const holdUnavailableMs = new Trend('stampede_hold_unavailable_ms', true);
// First send of a hold -> its answer, BUSY waits and retries included.
const holdWithRetriesMs = new Trend('stampede_hold_with_retries_ms', true);
const holdAttempts = new Counter('stampede_hold_attempts');
const holdsOk = new Counter('stampede_holds_ok');
const holdUnavailable = new Counter('stampede_hold_seat_unavailable');
const holdSoldOut = new Counter('stampede_hold_sold_out');
const holdOtherErrors = new Counter('stampede_hold_other_errors');
const holdAnswered = new Rate('stampede_hold_answered');
const realFailed = new Rate('stampede_real_failed');
// BUSY refusals (any operation), their latency, and those without a retryAfterMs.
const busy = new Counter('stampede_busy');
const busyMs = new Trend('stampede_busy_ms', true);
const busyNoHint = new Counter('stampede_busy_without_hint');
// Polling: the hints the server gave, and WAITING answers without one.
const pollAfter = new Trend('stampede_poll_after_seconds');
const pollHintMissing = new Counter('stampede_poll_hint_missing');
// When (seconds since the start) each hold succeeded: max = when the last seat went.
const holdOkAt = new Trend('stampede_hold_ok_at_seconds');
// The same as epoch ms, and the epoch ms at which each fan without a seat learned it.
const holdOkEpoch = new Trend('stampede_hold_ok_epoch_ms');
const learnedEpoch = new Trend('stampede_sold_out_learned_epoch_ms');
const activeAt = new Trend('stampede_active_at_seconds');
const activation = new Trend('stampede_activation_seconds');
// ACTIVE -> the fan's final answer (held, lost, or sold out), i.e. the booking part of the journey.
const booking = new Trend('stampede_booking_seconds');
const attemptsPerFan = new Trend('stampede_attempts_per_fan');
const seatsFreeSeen = new Trend('stampede_free_seats_seen');
// Final outcome of each fan: they add up to USERS.
const fansHeld = new Counter('stampede_fans_held');
const fansLost = new Counter('stampede_fans_lost'); // every hold they tried was SEAT_UNAVAILABLE
const fansSoldOut = new Counter('stampede_fans_sold_out'); // told SOLD_OUT, or saw a map with no free seat {via}
const fansFailed = new Counter('stampede_fans_failed'); // gave up after a real failure
const fansNotActive = new Counter('stampede_fans_not_active'); // neither ACTIVE nor told SOLD_OUT in time
const badPayload = new Counter('stampede_bad_payload');
// Scheduled opening: a fan saw ACTIVE, or was admitted, before the sale's opening (must be 0);
// fans whose enterQueue answered PREQUEUE; enterQueue answered SALE_NOT_OPEN (sent again later).
const activeBeforeOpen = new Counter('opening_active_before_open');
const fansPrequeued = new Counter('opening_fans_prequeued');
const enterNotOpen = new Counter('opening_enter_sale_not_open');
// A fan's second hold on the schedule (HOLD_ALREADY_EXISTS) would mean a lost answer.
const holdAlreadyExists = new Counter('stampede_hold_already_exists');

const info = (expr, names) => Object.fromEntries(names.map((n) => [n, [expr]]));

export const options = {
  scenarios: {
    stampede: {
      executor: 'per-vu-iterations',
      vus: VUS,
      iterations: 1,
      maxDuration: `${Math.ceil(MAX_SECONDS + 60 + (OPENING ? OPENS_IN_SECONDS : 0))}s`,
      gracefulStop: '30s',
    },
  },
  batch: USERS_PER_VU,
  batchPerHost: USERS_PER_VU,
  setupTimeout: '60s',
  discardResponseBodies: false,
  summaryTrendStats: ['avg', 'min', 'med', 'p(10)', 'p(90)', 'p(95)', 'p(99)', 'max', 'count'],
  thresholds: Object.assign(
    {
      stampede_hold_ms: [`p(95)<${latencyMs(500)}`, `p(99)<${latencyMs(1000)}`],
      stampede_holds_ok: [`count==${EXPECTED_HOLDS}`],
      stampede_real_failed: ['rate<0.005'],
      stampede_hold_answered: ['rate>0.999'],
      stampede_fans_not_active: ['count<1'],
    },
    OPENING ? { opening_active_before_open: ['count<1'] } : {},
    {
      // Not judged; listed so these sub-metrics reach the exported summary.
      graphql_failed: ['rate>=0'],
    },
    info('max>=0', ['stampede_busy_ms', 'stampede_hold_with_retries_ms', 'stampede_poll_after_seconds',
      'stampede_hold_ok_epoch_ms', ...VIA.map((v) => `stampede_sold_out_learned_epoch_ms{via:${v}}`)]),
    info('count>=0', ['stampede_busy_without_hint', 'stampede_poll_hint_missing', 'stampede_hold_sold_out',
      'opening_fans_prequeued', 'opening_enter_sale_not_open', ...VIA.map((v) => `stampede_fans_sold_out{via:${v}}`)]),
    Object.fromEntries(OPS.flatMap((op) => [
      [`http_req_duration{op:${op}}`, ['max>=0']],
      [`http_reqs{op:${op}}`, ['count>=0']],
      [`stampede_real_failed{op:${op}}`, ['rate>=0']],
      [`stampede_busy{op:${op}}`, ['count>=0']],
      [`stampede_busy_ms{op:${op}}`, ['max>=0']],
    ])),
    errorBreakdownThresholds(OPS),
    // Hold failures other than SEAT_UNAVAILABLE / SOLD_OUT, by code (TIMEOUT = "lock timeout").
    Object.fromEntries(ERROR_CODES.map((code) => [`stampede_hold_other_errors{code:${code}}`, ['count>=0']])),
  ),
};

// t0: when the race starts (now; with OPENING, the sale's opening), and the concert raced for.
export function setup() {
  if (!OPENING) return { t0: Date.now(), concertId: CONCERT_ID, ttlMs: null };
  const sale = scheduleOnSale(URL, organiserToken(), { seats: SEATS, fans: USERS, opensInSeconds: OPENS_IN_SECONDS, plan: PLAN });
  const p = sale.plan;
  console.log(`opening concert=${sale.concertId} schedule=${sale.scheduleId} prequeue_ms=${sale.prequeueOpensAtMs} `
    + `open_ms=${sale.salesOpenAtMs} setup_ms=${Date.now()} ttl_s=${sale.settings.activeTtlSeconds} `
    + `admit=${sale.settings.admitPerSecond} cap=${sale.settings.activeCap} seats=${SEATS} fans=${USERS} `
    + `capacity=${PLAN.bookingCapacity} seconds_to_buy=${PLAN.secondsToBuy} `
    + `slowest_seconds_to_buy=${PLAN.slowestSecondsToBuy} conversion=${PLAN.conversion} `
    + `plan_admit=${p.admitPerSecond} plan_cap=${p.activeCap} plan_fans_admitted=${p.fansAdmitted} `
    + `plan_sold_out_s=${p.soldOutAfterSeconds === null ? '-' : p.soldOutAfterSeconds} plan_told=${p.fansToldSoldOut} `
    + `plan_waits=${p.waitByPosition.map((w) => `${w.position}:${w.seconds}`).join(',') || '-'}`);
  return { t0: sale.salesOpenAtMs, concertId: sale.concertId, ttlMs: sale.settings.activeTtlSeconds * 1000 };
}

// With OPENING: what the server says its opening did, for the report.
export function teardown(data) {
  if (!OPENING) return;
  const q = queueOpening(URL, organiserToken(), data.concertId);
  console.log(q === null ? 'queue-opening none' : `queue-opening ${Object.keys(q).map((k) => `${k}=${q[k]}`).join(' ')}`);
}

function logOnce(state, msg) {
  if (state.logged >= ERROR_LOG_PER_VU) return;
  state.logged += 1;
  console.warn(msg);
}

function logError(state, fan, op, result) {
  const body = result.res.body ? String(result.res.body).slice(0, 400) : '';
  logOnce(state, `graphql error: op=${op} user=${fan.userId} status=${result.res.status} ` +
    `code=${errorCode(result)} token=${fan.token || '-'} body=${body}`);
}

function holdKind(fan) {
  if (MODE === 'mix') return fan.userId % 2 === 1 ? 'seat' : 'best';
  return MODE;
}

// The request a fan sends next, by stage.
function nextOp(fan) {
  switch (fan.stage) {
    case 'enter':
      return { query: ENTER, variables: { c: fan.concertId }, token: fan.jwt, name: 'enterQueue' };
    case 'poll':
      return { query: STATUS, variables: { t: fan.token }, token: fan.jwt, name: 'queueStatus' };
    case 'schedules':
      return { query: CONCERT, variables: { c: fan.concertId }, token: fan.jwt, name: 'concert' };
    case 'seats':
      return { query: SEAT_MAP, variables: { s: fan.scheduleId }, token: fan.jwt, name: 'schedule' };
    case 'hold':
      if (holdKind(fan) === 'best') {
        return { query: BEST, variables: { s: fan.scheduleId, n: 1 }, token: fan.jwt,
          queueToken: fan.token, name: 'holdBestAvailable' };
      }
      return { query: HOLD, variables: { s: fan.scheduleId, seats: [fan.seatId] }, token: fan.jwt,
        queueToken: fan.token, name: 'holdSeats' };
    default:
      throw new Error(`no request in stage ${fan.stage}`);
  }
}

function finish(fan, outcome, now, via) {
  fan.done = true;
  fan.outcome = outcome;
  if (fan.activeAt !== null) booking.add((now - fan.activeAt) / 1000);
  attemptsPerFan.add(fan.attempts, { outcome });
  switch (outcome) {
    case 'held': fansHeld.add(1); break;
    case 'lost': fansLost.add(1); break;
    case 'sold_out': fansSoldOut.add(1, { via }); break;
    case 'failed': fansFailed.add(1); break;
    default: fansNotActive.add(1);
  }
  if (OPENING) logRecord(fan, via);
}

// The fan's record line (see the header), '-' for what it never had.
function logRecord(fan, via) {
  const f = (v) => (v === null || v === undefined ? '-' : v);
  console.log(`fan ${fan.userId} ${f(fan.enterAnsweredAt)} ${f(fan.enterStatus)} ${f(fan.admittedAt)} ${f(fan.activeAt)} `
    + `${f(fan.firstPosition)} ${f(fan.heldAt)} ${fan.outcome} ${f(via)}`);
}

// The fan stops without a seat, told so by `via` at `now` (epoch ms).
function noSeat(fan, now, via) {
  learnedEpoch.add(now, { via });
  finish(fan, via === 'lost' ? 'lost' : 'sold_out', now, via);
}

function becameActive(fan, now, t0) {
  fan.activeAt = now;
  activation.add((now - fan.enteredAt) / 1000);
  activeAt.add((now - t0) / 1000);
  fan.stage = 'schedules';
  fan.nextAt = now;
}

// A real failure in a booking step: try that step again (a real client would), up to
// MAX_ATTEMPTS failures per fan, then give up.
function retryOrFail(fan, now) {
  fan.failures += 1;
  if (fan.failures >= MAX_ATTEMPTS) finish(fan, 'failed', now);
  else fan.nextAt = now + 250;
}

// BUSY: the same request again after the server's retryAfterMs.
function onBusy(fan, op, result, ms, now) {
  busy.add(1, { op });
  busyMs.add(ms, { op });
  if (retryAfterMs(result) === null) busyNoHint.add(1, { op });
  fan.nextAt = now + busyDelayMs(result);
}

function onHold(fan, op, result, ms, now, t0, state, sentAt) {
  holdMs.add(ms, { op });
  holdWithRetriesMs.add(now - (fan.holdSentAt === null ? sentAt : fan.holdSentAt), { op });
  fan.holdSentAt = null;
  holdAttempts.add(1, { op });
  fan.attempts += 1;
  const code = errorCode(result);
  holdAnswered.add(!isRealFailure(result, EXPECTED_CODES), { op });
  if (!result.errors) {
    const r = result.data && result.data[op];
    if (!r || !r.id || r.status !== 'HELD') {
      badPayload.add(1, { op });
      logError(state, fan, op, result);
    }
    holdOkMs.add(ms, { op });
    holdsOk.add(1, { op });
    holdOkAt.add((now - t0) / 1000);
    holdOkEpoch.add(now);
    fan.heldAt = now;
    finish(fan, 'held', now);
  } else if (isSoldOut(result)) {
    holdSoldOut.add(1, { op });
    noSeat(fan, now, 'hold');
  } else if (code === 'SEAT_UNAVAILABLE') {
    holdUnavailableMs.add(ms, { op });
    holdUnavailable.add(1, { op });
    if (fan.attempts >= MAX_ATTEMPTS) noSeat(fan, now, 'lost');
    else { fan.stage = 'seats'; fan.nextAt = now; }
  } else {
    holdOtherErrors.add(1, { op, code });
    if (code === 'HOLD_ALREADY_EXISTS') holdAlreadyExists.add(1);
    logError(state, fan, op, result);
    if (fan.attempts >= MAX_ATTEMPTS) finish(fan, 'failed', now);
    else { fan.stage = 'seats'; fan.nextAt = now + 250; }
  }
}

// With OPENING: what a queue answer tells about the opening (t0): when the fan entered, its first
// place in line after the opening, when it was admitted (activeUntil minus the active TTL), and
// whether anyone was ACTIVE before the opening.
function noteOpening(fan, op, d, now, t0, ttlMs) {
  if (op === 'enterQueue' && fan.enterAnsweredAt === null) {
    fan.enterAnsweredAt = now;
    fan.enterStatus = d.status;
    if (d.status === 'PREQUEUE') fansPrequeued.add(1);
  }
  if (d.status === 'WAITING' && fan.firstPosition === null && typeof d.position === 'number') fan.firstPosition = d.position;
  if (d.status !== 'ACTIVE' || fan.activeAt !== null) return;
  const until = d.activeUntil ? Date.parse(d.activeUntil) : NaN;
  fan.admittedAt = Number.isNaN(until) || ttlMs === null ? null : until - ttlMs;
  if (now < t0 || (fan.admittedAt !== null && fan.admittedAt < t0)) activeBeforeOpen.add(1);
}

// A queue answer (enterQueue or queueStatus) with data.
function onQueue(fan, op, d, now, t0, state, sentAt, ttlMs) {
  if (op === 'enterQueue') fan.token = d.token;
  if (OPENING) noteOpening(fan, op, d, now, t0, ttlMs);
  const hint = pollHint(d);
  if (hint !== null) pollAfter.add(hint, { status: d.status });
  switch (d.status) {
    case 'ACTIVE':
      becameActive(fan, now, t0);
      return;
    case 'PREQUEUE':
      // In line before the opening, with no place yet: ask again when the hint says.
      fan.stage = 'poll';
      fan.nextAt = now + pollDelaySeconds(d, POLL_SECONDS) * 1000;
      return;
    case 'WAITING':
      if (hint === null) pollHintMissing.add(1, { op });
      fan.stage = 'poll';
      // hint: the server's pollAfterSeconds after its answer. fixed: POLL_SECONDS after the enter
      // answer, then after the previous poll started (a client's setInterval).
      fan.nextAt = POLL_MODE === 'fixed'
        ? (op === 'enterQueue' ? now : sentAt) + POLL_SECONDS * 1000
        : now + pollDelaySeconds(d, POLL_SECONDS) * 1000;
      return;
    case 'SOLD_OUT':
      noSeat(fan, now, op);
      return;
    default:
      logOnce(state, `queue token ${d.status}: user=${fan.userId} token=${fan.token}`);
      finish(fan, 'not_active', now);
  }
}

function onSeatMap(fan, d, now) {
  const free = (d.seats || []).filter((s) => s.status === 'AVAILABLE');
  seatsFreeSeen.add(free.length);
  if (free.length === 0) {
    noSeat(fan, now, 'seat_map');
    return;
  }
  fan.seatId = free[Math.floor(Math.random() * free.length)].id;
  fan.stage = 'hold';
  fan.nextAt = now;
}

// enterQueue before the pre-queue opened: again at the answer's prequeueOpensAt (or after
// POLL_SECONDS when it gives none); an answer, not a failure.
function onNotOpen(fan, result, now) {
  enterNotOpen.add(1);
  const e = (result.errors || [])[0];
  const at = e && e.extensions && e.extensions.prequeueOpensAt ? Date.parse(e.extensions.prequeueOpensAt) : NaN;
  fan.nextAt = Number.isNaN(at) ? now + POLL_SECONDS * 1000 : Math.max(now + 100, at);
}

function handle(fan, op, result, now, t0, state, sentAt, ttlMs) {
  const ms = result.res.timings ? result.res.timings.duration : now - sentAt;
  const isHold = op === 'holdSeats' || op === 'holdBestAvailable';
  if (isBusy(result)) {
    if (isHold && fan.holdSentAt === null) fan.holdSentAt = sentAt;
    onBusy(fan, op, result, ms, now);
    return;
  }
  if (op === 'enterQueue' && errorCode(result) === 'SALE_NOT_OPEN') {
    onNotOpen(fan, result, now);
    return;
  }
  realFailed.add(isRealFailure(result, EXPECTED_CODES), { op });
  if (isHold) {
    onHold(fan, op, result, ms, now, t0, state, sentAt);
    return;
  }
  if (isSoldOut(result)) {
    // enterQueue on a sold-out concert (no token); a read that says so is told the same way.
    noSeat(fan, now, op === 'queueStatus' ? 'queueStatus' : 'enterQueue');
    return;
  }
  if (result.errors) {
    logError(state, fan, op, result);
    // Queue requests are tried again at the next poll (the deadline ends it).
    if (op === 'enterQueue' || op === 'queueStatus') fan.nextAt = now + POLL_SECONDS * 1000;
    else retryOrFail(fan, now);
    return;
  }
  const d = result.data && result.data[op];
  if (!d) {
    badPayload.add(1, { op });
    logError(state, fan, op, result);
    retryOrFail(fan, now);
    return;
  }
  if (op === 'enterQueue' || op === 'queueStatus') onQueue(fan, op, d, now, t0, state, sentAt, ttlMs);
  else if (op === 'concert') {
    const schedules = d.schedules || [];
    if (schedules.length === 0) {
      badPayload.add(1, { op });
      retryOrFail(fan, now);
      return;
    }
    fan.scheduleId = schedules[0].id;
    fan.stage = 'seats';
    fan.nextAt = now;
  } else if (op === 'schedule') onSeatMap(fan, d, now);
  else badPayload.add(1, { op });
}

export default function (data) {
  const t0 = data.t0;
  const vu = exec.vu.idInTest; // 1-based
  const first = (vu - 1) * USERS_PER_VU;
  const count = Math.min(USERS_PER_VU, USERS - first);
  const state = { logged: 0 };
  const fans = [];
  for (let i = 0; i < count; i++) {
    const userId = USER_ID_BASE + first + i + 1;
    fans.push({
      userId, jwt: userToken(userId), concertId: data.concertId, token: null, stage: 'enter', nextAt: 0,
      enteredAt: null, activeAt: null, scheduleId: null, seatId: null, attempts: 0, failures: 0, holdSentAt: null,
      done: false, outcome: null, enterAnsweredAt: null, enterStatus: null, firstPosition: null, admittedAt: null,
      heldAt: null,
    });
  }
  const deadline = t0 + MAX_SECONDS * 1000;
  for (;;) {
    const pending = fans.filter((f) => !f.done);
    if (pending.length === 0) break;
    let now = Date.now();
    if (now > deadline) {
      for (const f of pending) {
        logOnce(state, `not done after ${MAX_SECONDS}s: user=${f.userId} stage=${f.stage} token=${f.token}`);
        finish(f, f.activeAt === null ? 'not_active' : 'failed', now);
      }
      break;
    }
    const due = pending.filter((f) => f.nextAt <= now);
    if (due.length === 0) {
      const wake = Math.min(...pending.map((f) => f.nextAt));
      sleep(Math.max(0.01, (wake - now) / 1000));
      continue;
    }
    const ops = due.map((f) => nextOp(f));
    for (const f of due) if (f.enteredAt === null) f.enteredAt = now;
    const sentAt = now;
    const results = gqlBatch(URL, ops);
    now = Date.now();
    results.forEach((result, i) => handle(due[i], ops[i].name, result, now, t0, state, sentAt, data.ttlMs));
  }
}
