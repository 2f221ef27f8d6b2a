"""Run the demo app under uvicorn with a clean shutdown on SIGINT and SIGTERM."""

import contextlib
import logging
import signal
import socket

import uvicorn

__all__ = ["DemoServer", "bind_socket"]

log = logging.getLogger("pygamesvc.demo")

_SHUTDOWN_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def bind_socket(host, port):
    """Return a listening TCP socket on (host, port); port 0 picks a free one."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto must be IPPROTO_TCP, not 0, because asyncio sets TCP_NODELAY only
    # on sockets created with it.  Without TCP_NODELAY every response that
    # uvicorn writes in two parts waits ~40 ms for a delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(1024)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


class ShutdownSignals:
    """Turn the first SIGINT or SIGTERM into a graceful shutdown request.

    Installed before the service starts, so a signal that arrives during
    start-up is not lost: the server then exits as soon as it runs.  A
    second SIGINT forces uvicorn to exit without waiting for open
    connections.  ``on_shutdown`` callbacks run inside the signal handler,
    so they must only set flags or events.
    """

    def __init__(self):
        self.received = None
        self.server = None
        self.on_shutdown = []
        self._previous = {}

    def install(self):
        for sig in _SHUTDOWN_SIGNALS:
            self._previous[sig] = signal.signal(sig, self._handle)

    def restore(self):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def attach(self, server):
        """Route shutdown requests to ``server``, including one already received."""
        self.server = server
        if self.received is not None:
            server.should_exit = True

    def _handle(self, sig, frame):
        server = self.server
        if server is not None:
            if server.should_exit and sig == signal.SIGINT:
                server.force_exit = True
            server.should_exit = True
        if self.received is None:
            self.received = signal.Signals(sig).name
            for callback in self.on_shutdown:
                callback()


class DemoServer(uvicorn.Server):
    """A uvicorn server that leaves signal handling to ShutdownSignals.

    uvicorn's own handler re-raises the signal after a graceful shutdown, so
    the process would end with KeyboardInterrupt or status 143 before the
    caller could close the service.  With ShutdownSignals the server stops
    accepting connections, lets in-flight requests finish and returns from
    ``run``, and the caller exits with status 0.
    """

    @contextlib.contextmanager
    def capture_signals(self):
        yield

    def request_exit(self):
        """Ask the server to shut down gracefully; safe from any thread."""
        self.should_exit = True
