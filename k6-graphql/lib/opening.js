// A scheduled on-sale set up the way an organiser sets one up (README, "Running an on-sale"),
// through the API with an organiser's access token: create the concert, schedule a performance
// whose pre-queue opens now and whose sale opens `opensInSeconds` later, lay out its seats, ask
// the capacity planner for the queue settings and set them on the concert. After the sale,
// `queueOpening` says what the server's opening did (when, its shuffle's seed, how many fans it
// shuffled and how many came after).
//
//   import { organiserToken, scheduleOnSale, queueOpening } from './lib/opening.js';
//   const sale = scheduleOnSale(GRAPHQL_URL, organiserToken(), { seats: 50, fans: 10000,
//     opensInSeconds: 30, plan: { bookingCapacity: 740, secondsToBuy: 2, slowestSecondsToBuy: 5, conversion: 1 } });
//   // sale: { concertId, scheduleId, prequeueOpensAtMs, salesOpenAtMs, plan, settings }
//
// Every step must succeed: a failure throws (in setup(), that ends the test before any fan).
import { gql } from './graphql.js';
import { mintJwt } from './jwt.js';

// The organiser's user id: organiser operations do not need the user to exist.
export const ORGANISER_USER = 1;
// Seats per row of the laid-out map (rows hold 1 to 1,000).
export const SEATS_PER_ROW = 50;
// Price of every seat, in points (the load seed gives each fan far more).
export const SEAT_PRICE = 10000;

const CREATE_CONCERT = `mutation createConcert($title: String!, $artist: String!) {
  createConcert(title: $title, artist: $artist) { id }
}`;
const CREATE_SCHEDULE = `mutation createSchedule($input: NewScheduleInput!) {
  createSchedule(input: $input) { id prequeueOpensAt salesOpenAt salesCloseAt }
}`;
const LAY_OUT = `mutation layOutSeats($s: ID!, $sections: [SectionInput!]!) {
  layOutSeats(scheduleId: $s, sections: $sections) { seats created }
}`;
const CAPACITY_PLAN = `query capacityPlan($input: CapacityPlanInput!) {
  capacityPlan(input: $input) {
    admitPerSecond activeCap fansAdmitted soldOutAfterSeconds fansToldSoldOut
    waitByPosition { position seconds }
  }
}`;
const SET_QUEUE = `mutation setQueueSettings($c: ID!, $rate: Float!, $cap: Int!) {
  setQueueSettings(concertId: $c, admitPerSecond: $rate, activeCap: $cap) {
    admitPerSecond activeCap activeTtlSeconds paused
  }
}`;
const QUEUE_OPENING = `query queueOpening($c: ID!) {
  queueOpening(concertId: $c) { salesOpenAt openedAt seed fansInPrequeue fansShuffled fansAfterOpening }
}`;

// An access token with the organiser's role.
export function organiserToken(userId = ORGANISER_USER) {
  return mintJwt({ sub: String(userId), role: 'organiser' });
}

// `result.data[field]`, or throws with the step's name and the answer.
function must(result, step, field) {
  const d = result.data && result.data[field];
  if (result.errors || d === undefined || d === null) {
    const body = result.res && result.res.body ? String(result.res.body).slice(0, 400) : '';
    throw new Error(`organiser step ${step} failed: status=${result.res && result.res.status} ${body}`);
  }
  return d;
}

// One section, "Floor", of rows A, B, ... of SEATS_PER_ROW seats (the last row the remainder).
export function seatMap(seats) {
  const rows = [];
  for (let left = seats, i = 0; left > 0; left -= SEATS_PER_ROW, i++) {
    rows.push({ label: `R${i + 1}`, seats: Math.min(SEATS_PER_ROW, left), grade: 'R', price: SEAT_PRICE });
  }
  return [{ name: 'Floor', rows }];
}

// The sale's times (ms since the epoch): the pre-queue opens `now`, the sale `opensInSeconds`
// later and closes an hour after that; the show is a day after the opening.
export function saleTimes(now, opensInSeconds) {
  const open = now + opensInSeconds * 1000;
  return { prequeueOpensAtMs: now, salesOpenAtMs: open, salesCloseAtMs: open + 3600 * 1000,
    startsAtMs: open + 24 * 3600 * 1000 };
}

const iso = (ms) => new Date(ms).toISOString();

// Creates the concert, its performance and seats, plans the sale and sets the concert's queue
// to the plan (admission rate and active cap); returns what the fans and the report need.
export function scheduleOnSale(url, token, { seats, fans, opensInSeconds, plan, title = 'Opening night' }) {
  const opts = (name) => ({ token, name, text: true });
  const concert = must(gql(url, CREATE_CONCERT, { title, artist: 'The Load Testers' }, opts('createConcert')),
    'createConcert', 'createConcert');
  const t = saleTimes(Date.now(), opensInSeconds);
  const input = { concertId: concert.id, venue: 'Olympic Hall', startsAt: iso(t.startsAtMs),
    prequeueOpensAt: iso(t.prequeueOpensAtMs), salesOpenAt: iso(t.salesOpenAtMs), salesCloseAt: iso(t.salesCloseAtMs) };
  const schedule = must(gql(url, CREATE_SCHEDULE, { input }, opts('createSchedule')), 'createSchedule', 'createSchedule');
  const laid = must(gql(url, LAY_OUT, { s: schedule.id, sections: seatMap(seats) }, opts('layOutSeats')),
    'layOutSeats', 'layOutSeats');
  if (laid.seats !== seats) throw new Error(`layOutSeats laid out ${laid.seats} seats, not ${seats}`);
  const planned = must(gql(url, CAPACITY_PLAN, { input: {
    seats, fans, secondsToBuy: plan.secondsToBuy, slowestSecondsToBuy: plan.slowestSecondsToBuy,
    seatsPerPurchase: 1, conversion: plan.conversion,
    bookingCapacity: plan.bookingCapacity,
  } }, opts('capacityPlan')), 'capacityPlan', 'capacityPlan');
  const settings = must(gql(url, SET_QUEUE, { c: concert.id, rate: planned.admitPerSecond, cap: planned.activeCap },
    opts('setQueueSettings')), 'setQueueSettings', 'setQueueSettings');
  return { concertId: concert.id, scheduleId: schedule.id, prequeueOpensAtMs: t.prequeueOpensAtMs,
    salesOpenAtMs: Date.parse(schedule.salesOpenAt), plan: planned, settings };
}

// What the server's opening did (null before it opened, or when the server cannot say).
export function queueOpening(url, token, concertId) {
  const result = gql(url, QUEUE_OPENING, { c: concertId }, { token, name: 'queueOpening', text: true });
  if (result.errors) {
    console.warn(`queueOpening: ${String(result.res.body).slice(0, 300)}`);
    return null;
  }
  return (result.data && result.data.queueOpening) || null;
}
