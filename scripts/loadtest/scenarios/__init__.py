"""Every scenario, by its command-line name (the order `scripts/load --help` lists them)."""

from loadtest.scenarios.breakpoint import Breakpoint
from loadtest.scenarios.drill import Drill
from loadtest.scenarios.ceiling import Ceiling
from loadtest.scenarios.mixed import Mixed
from loadtest.scenarios.opening import Opening
from loadtest.scenarios.payments import Payments
from loadtest.scenarios.queue_wave import QueueWave
from loadtest.scenarios.seat_expiry import SeatExpiry
from loadtest.scenarios.seat_stampede import SeatStampede
from loadtest.scenarios.spike import Spike
from loadtest.scenarios.subscriptions import Subscriptions

SCENARIOS = {cls.name: cls for cls in (QueueWave, SeatStampede, Opening, Payments, SeatExpiry, Mixed, Spike, Breakpoint,
                                       Subscriptions, Ceiling, Drill)}
