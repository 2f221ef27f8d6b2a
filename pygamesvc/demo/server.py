"""Run the demo app under uvicorn with a clean shutdown on SIGINT and SIGTERM."""

import contextlib
import logging
import signal
import socket
import threading

import uvicorn

__all__ = ["DemoServer", "bind_socket"]

log = logging.getLogger("pygamesvc.demo")

_SHUTDOWN_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def bind_socket(host, port):
    """Return a listening TCP socket on (host, port); port 0 picks a free one."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto must be IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on
    # connections whose socket says so, and without it every response that
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


class DemoServer(uvicorn.Server):
    """A uvicorn server whose first SIGINT or SIGTERM means "finish and exit".

    uvicorn's own handler re-raises the signal after a graceful shutdown, so
    the process would end with KeyboardInterrupt or status 143 before the
    caller could close the service.  This one only records the signal: the
    server stops accepting connections, lets in-flight requests finish and
    returns from ``run``, and the caller exits with status 0.  A second
    SIGINT forces the exit without waiting for open connections.

    ``on_shutdown`` (optional) is called from the signal handler, so it must
    only set flags or events.
    """

    def __init__(self, config, *, on_shutdown=None):
        super().__init__(config)
        self.on_shutdown = on_shutdown
        self.shutdown_signal = None

    @contextlib.contextmanager
    def capture_signals(self):
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {sig: signal.signal(sig, self._on_signal) for sig in _SHUTDOWN_SIGNALS}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _on_signal(self, sig, frame):
        if self.should_exit and sig == signal.SIGINT:
            self.force_exit = True
        self.should_exit = True
        if self.shutdown_signal is None:
            self.shutdown_signal = signal.Signals(sig).name
        if self.on_shutdown is not None:
            self.on_shutdown()

    def request_exit(self):
        """Ask the server to shut down gracefully; safe from any thread."""
        self.should_exit = True
