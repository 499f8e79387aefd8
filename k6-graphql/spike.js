// Spike test (docs/load-test-plan.md, "Test types": a sudden event-like burst): fans on the full
// journey (lib/journey.js) arrive at RATE requests/s, then within 2 s at SPIKE_FACTOR x RATE (10x)
// for BURST_SECONDS, then back at RATE for RECOVERY_SECONDS: how the service degrades during the
// burst and how fast it recovers after it.
//
// Run it through `scripts/load spike [--rate R]` (default 100 req/s baseline, so a 1,000 req/s
// burst), which seeds data for the whole run and writes docs/results/spike.{md,json}. By hand:
//   k6 run -e BASE_URL=http://127.0.0.1:18080 -e RATE=20 -e BASELINE_SECONDS=10 -e BURST_SECONDS=10 \
//     -e RECOVERY_SECONDS=20 k6-graphql/spike.js
//
// Load model: k6 `ramping-arrival-rate` of journeys (RATE / 8 per second, see mixed.js), open:
// arrivals do not wait for the server. Every request is tagged `phase` by when it was sent:
// baseline (before the burst), burst (the 2 s jump and the burst), recovery (from the moment the
// rate starts falling), and `window` (5 s windows) for the report's timeline and recovery time.
//
// Env: RATE (100 req/s), SPIKE_FACTOR (10), BASELINE_SECONDS (60), BURST_SECONDS (60),
//      RECOVERY_SECONDS (120), PRE_VUS, MAX_VUS (3000), and lib/journey.js's settings.
//
// Thresholds (plan success criteria, per phase):
//   baseline: http_req_duration p(95) < 500 ms, p(99) < 1 s; journey_real_failed < 0.1 %
//   burst:    journey_real_failed < 0.5 % (the plan's error-rate criterion: it may be slow, it must
//             not fail); its latency is reported, not judged
//   recovery: http_req_duration p(95) < 500 ms, p(99) < 1 s; journey_real_failed < 0.1 %
// The report adds the recovery time: from the end of the burst until the first 5 s window with
// P95 < 500 ms and no failed request.
import exec from 'k6/execution';
import { errorBreakdownThresholds } from './lib/graphql.js';
import { JOURNEY_OPS, JOURNEY_REQUESTS, journeyInfoThresholds, runJourney } from './lib/journey.js';
import { TREND_STATS, envInt, info, latencyMs, windowTag, windowThresholds } from './lib/config.js';

const RATE = envInt('RATE', 100);
const FACTOR = envInt('SPIKE_FACTOR', 10);
const BASE_S = envInt('BASELINE_SECONDS', 60);
const BURST_S = envInt('BURST_SECONDS', 60);
const RECOVERY_S = envInt('RECOVERY_SECONDS', 120);
const RAMP_S = 2;
const WINDOW_SECONDS = 5;
const perMin = (reqPerS) => Math.max(1, Math.round((reqPerS * 60) / JOURNEY_REQUESTS));
const BASE_J = perMin(RATE);
const BURST_J = perMin(RATE * FACTOR);
const PRE_VUS = envInt('PRE_VUS', Math.max(10, Math.ceil((BASE_J / 60) * 4)));
const MAX_VUS = Math.max(PRE_VUS, envInt('MAX_VUS', 3000));
const TOTAL_S = BASE_S + RAMP_S + BURST_S + RAMP_S + RECOVERY_S;

// The phase of a request sent `ms` after the start.
function phaseAt(ms) {
  const s = ms / 1000;
  if (s < BASE_S) return 'baseline';
  if (s < BASE_S + RAMP_S + BURST_S) return 'burst';
  return 'recovery';
}

const phases = ['baseline', 'burst', 'recovery'];
const phaseInfo = {};
for (const p of phases) {
  Object.assign(phaseInfo, info('trend', [`http_req_duration{phase:${p}}`, `journey_ms{phase:${p}}`]),
    info('counter', [`http_reqs{phase:${p}}`, `journey_outcomes{phase:${p}}`]),
    info('rate', [`journey_real_failed{phase:${p}}`]));
}

export const options = {
  scenarios: {
    spike: {
      executor: 'ramping-arrival-rate',
      startRate: BASE_J,
      timeUnit: '1m',
      preAllocatedVUs: PRE_VUS,
      maxVUs: MAX_VUS,
      stages: [
        { target: BASE_J, duration: `${BASE_S}s` },
        { target: BURST_J, duration: `${RAMP_S}s` },
        { target: BURST_J, duration: `${BURST_S}s` },
        { target: BASE_J, duration: `${RAMP_S}s` },
        { target: BASE_J, duration: `${RECOVERY_S}s` },
      ],
      gracefulStop: '30s',
    },
  },
  summaryTrendStats: TREND_STATS,
  thresholds: Object.assign(
    {},
    journeyInfoThresholds(),
    errorBreakdownThresholds(JOURNEY_OPS),
    phaseInfo,
    windowThresholds(Math.ceil(TOTAL_S / WINDOW_SECONDS) + 8, 'journey_real_failed', WINDOW_SECONDS),
    {
      'http_req_duration{phase:baseline}': [`p(95)<${latencyMs(500)}`, `p(99)<${latencyMs(1000)}`],
      'journey_real_failed{phase:baseline}': ['rate<0.001'],
      'journey_real_failed{phase:burst}': ['rate<0.005'],
      'http_req_duration{phase:recovery}': [`p(95)<${latencyMs(500)}`, `p(99)<${latencyMs(1000)}`],
      'journey_real_failed{phase:recovery}': ['rate<0.001'],
    },
  ),
};

export function setup() {
  return { t0: Date.now() };
}

export default function (data) {
  runJourney(exec.scenario.iterationInTest, () => {
    const ms = Date.now() - data.t0;
    return { phase: phaseAt(ms), window: windowTag(ms, WINDOW_SECONDS) };
  });
}
