// The GraphQL documents the scenarios send, named as in schema.graphql (the operation name is the
// `op` tag of every request, see graphql.js).

// pollAfterSeconds: when to ask queueStatus again (lib/queue.js).
export const ENTER = `mutation enterQueue($c: ID!) {
  enterQueue(concertId: $c) { token status position estimatedWaitSeconds activeUntil pollAfterSeconds }
}`;

export const STATUS = `query queueStatus($t: String!) {
  queueStatus(token: $t) { status position estimatedWaitSeconds activeUntil pollAfterSeconds }
}`;

export const STATUS_SUBSCRIPTION = `subscription queueStatus($t: String!) {
  queueStatus(token: $t) { status position ahead estimatedWaitSeconds activeUntil }
}`;

// A catalogue page: what a landing page lists.
export const CONCERTS = `query concerts($limit: Int!, $offset: Int!) {
  concerts(limit: $limit, offset: $offset) { id title artist }
}`;

// A concert's page: its schedules and how many seats each has left.
export const CONCERT = `query concert($id: ID!) {
  concert(id: $id) { id title schedules { id startsAt venue availableSeats } }
}`;

// The seat map of one schedule.
export const SEAT_MAP = `query schedule($id: ID!) {
  schedule(id: $id) { id availableSeats seats { id number grade price status } }
}`;

export const AVAILABLE = `query availableSeats($id: ID!) {
  schedule(id: $id) { id availableSeats }
}`;

export const HOLD_SEATS = `mutation holdSeats($s: ID!, $seats: [ID!]!) {
  holdSeats(scheduleId: $s, seatIds: $seats) { id status totalPrice expiresAt }
}`;

export const HOLD_BEST = `mutation holdBestAvailable($s: ID!, $n: Int!) {
  holdBestAvailable(scheduleId: $s, count: $n) { id status totalPrice expiresAt seats { id } }
}`;

export const PAY = `mutation pay($r: ID!, $k: String!) {
  pay(reservationId: $r, idempotencyKey: $k) { paymentId reservationId amount balanceAfter }
}`;

export const ME = `query me {
  me { id points reservations(limit: 5) { id status totalPrice } }
}`;

export const TYPENAME = 'query typename { __typename }';

// Codes worth retrying as they are (the request may simply be repeated), as opposed to answers.
export const TRANSIENT_CODES = ['BUSY', 'UNAVAILABLE', 'QUEUE_UNAVAILABLE', 'TIMEOUT', 'NETWORK',
  'HTTP_502', 'HTTP_503', 'HTTP_504'];
