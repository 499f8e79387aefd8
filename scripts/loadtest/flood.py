"""Idle connections against one instance, held open while a drill's load runs: websockets that
finish the graphql-transport-ws handshake and then say nothing, and slow clients (slowloris) that
send a request's headers or body a few bytes at a time. Records how many were opened and how
many the server closed, and when."""

import asyncio
import threading
import time

import websockets

SLOW_EVERY_S = 5  # one more byte (or header line) per slow client this often


class Flood:
    def __init__(self, url, websockets_n, slow_n):
        self.host, self.port = url.removeprefix("http://").split(":")
        self.ws_url = f"ws://{self.host}:{self.port}/graphql/ws"
        self.websockets_n, self.slow_n = websockets_n, slow_n
        self.stats = {"websockets_opened": 0, "websockets_acknowledged": 0, "websockets_failed": 0,
                      "websockets_closed_by_server": 0, "slow_opened": 0, "slow_closed_by_server": 0,
                      "slow_closed_after_s": []}
        self.loop = asyncio.new_event_loop()
        self.stopping = None
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def start(self):
        """Opens every connection (at most 200 handshakes at a time); returns once all were tried."""
        self.thread.start()
        return asyncio.run_coroutine_threadsafe(self._open_all(), self.loop).result(timeout=300)

    def stop(self):
        """Closes every connection still open; returns the stats."""
        self.loop.call_soon_threadsafe(self.stopping.set)
        time.sleep(SLOW_EVERY_S + 1)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        closed = sorted(self.stats.pop("slow_closed_after_s"))
        self.stats["slow_closed_after_s_median"] = closed[len(closed) // 2] if closed else None
        return self.stats

    async def _open_all(self):
        self.stopping = asyncio.Event()
        gate = asyncio.Semaphore(200)
        self.tasks = [asyncio.ensure_future(self._websocket(gate)) for _ in range(self.websockets_n)]
        self.tasks += [asyncio.ensure_future(self._slow(gate, i % 2 == 0)) for i in range(self.slow_n)]
        while sum(self.stats[k] for k in ("websockets_acknowledged", "websockets_failed", "slow_opened")) \
                < self.websockets_n + self.slow_n and not all(t.done() for t in self.tasks):
            await asyncio.sleep(0.2)
        return dict(self.stats)

    async def _websocket(self, gate):
        try:
            async with gate:
                ws = await websockets.connect(self.ws_url, subprotocols=["graphql-transport-ws"], open_timeout=30,
                                              ping_interval=None, max_queue=4)
                self.stats["websockets_opened"] += 1
                await ws.send('{"type":"connection_init","payload":{}}')
                await asyncio.wait_for(ws.recv(), 30)
                self.stats["websockets_acknowledged"] += 1
        except Exception:  # noqa: BLE001  counted: the server refused or dropped it
            self.stats["websockets_failed"] += 1
            return
        closed = asyncio.ensure_future(ws.wait_closed())
        stop = asyncio.ensure_future(self.stopping.wait())
        await asyncio.wait([closed, stop], return_when=asyncio.FIRST_COMPLETED)
        if closed.done() and not self.stopping.is_set():
            self.stats["websockets_closed_by_server"] += 1
        await ws.close()

    async def _slow(self, gate, headers):
        """A request whose headers (or, with `headers` false, whose body) never finish."""
        try:
            async with gate:
                reader, writer = await asyncio.open_connection(self.host, int(self.port))
        except OSError:
            return
        self.stats["slow_opened"] += 1
        opened = time.monotonic()
        head = f"POST /graphql HTTP/1.1\r\nHost: {self.host}\r\nContent-Type: application/json\r\n"
        writer.write((head if headers else head + "Content-Length: 100000\r\n\r\n{").encode())
        try:
            while not self.stopping.is_set():
                done = await _read_or_wait(reader, SLOW_EVERY_S)
                if done:
                    break
                writer.write(b"X-Slow: 1\r\n" if headers else b" ")
                await writer.drain()
        except OSError:
            done = True
        if not self.stopping.is_set():
            self.stats["slow_closed_by_server"] += 1
            self.stats["slow_closed_after_s"].append(round(time.monotonic() - opened, 1))
        writer.close()


async def _read_or_wait(reader, seconds):
    """True when the server answered or closed within `seconds`."""
    try:
        await asyncio.wait_for(reader.read(1024), seconds)
        return True
    except asyncio.TimeoutError:
        return False
