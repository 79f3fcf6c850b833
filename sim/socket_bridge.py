"""Serve the simulated board's serial line on a TCP socket, for host code in a thread.

Host code (the pyserial driver :class:`plasticore.host.BoardCore`, or a whole ``plasticore``
command) runs in an ordinary thread and connects to ``socket://127.0.0.1:PORT``, as it would
to a board through a serial-to-TCP bridge; the cocotb coroutine moves the bytes between
that socket and the design's UART pins.

The link is request and reply (``docs/protocol.md``), so the bridge counts frames both
ways: while a request is unanswered the design runs flat out; once every request has its
reply, simulated time stands still and the bridge waits (in real time, without holding the
interpreter) for the host's next bytes. Simulated time then only passes when something
happens on the line, which keeps a long host session fast.
"""

from __future__ import annotations

import select
import socket
import threading

from cocotb.triggers import Timer

from plasticore.protocol import SYNC

__all__ = ["serve_over_socket", "FrameCounter"]

REQUEST_HEADER = 3          # command, length (2 bytes) after the sync byte
REPLY_HEADER = 4            # command, status, length (2 bytes) after the sync byte
CRC_BYTES = 2


class FrameCounter:
    """Count the complete frames in a byte stream (bytes before a sync byte are skipped)."""

    def __init__(self, header_bytes: int):
        self.header_bytes = header_bytes
        self.frames = 0
        self._frame = bytearray()

    def feed(self, data: bytes) -> None:
        for byte in data:
            if not self._frame and byte != SYNC:
                continue
            self._frame.append(byte)
            header = self._frame[1:1 + self.header_bytes]
            if len(header) == self.header_bytes:
                length = header[-2] | header[-1] << 8
                if len(self._frame) == 1 + self.header_bytes + length + CRC_BYTES:
                    self.frames += 1
                    self._frame.clear()


async def serve_over_socket(uart, host_code, *, join_seconds: float = 600.0,
                            idle_wait: float = 0.05):
    """Run ``host_code(url)`` in a thread against ``uart``; return what it returns.

    Parameters
    ----------
    uart : plasticore.sim.uart_model.UartHost
        The host's end of the design's serial line.
    host_code : callable
        Called with the pyserial URL to connect to; runs in its own thread.
    join_seconds : float
        How long the host code may go on after it closed the connection (writing its
        outputs, say).
    idle_wait : float
        Real seconds to wait for the host while every request has its reply; simulated
        time advances by one byte after each such wait (a host may send a partial frame).

    Raises
    ------
    BaseException
        Whatever ``host_code`` raised, re-raised here.
    """
    byte_ps = 10 * uart.bit_time_ps
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    url = f"socket://127.0.0.1:{server.getsockname()[1]}"
    outcome = {}

    def thread_main():
        try:
            outcome["value"] = host_code(url)
        except BaseException as error:     # re-raised in the simulation below
            outcome["failure"] = error

    thread = threading.Thread(target=thread_main, daemon=True)
    thread.start()
    requests, replies = FrameCounter(REQUEST_HEADER), FrameCounter(REPLY_HEADER)
    connection = None
    try:
        while connection is None and thread.is_alive():
            if select.select([server], [], [], idle_wait)[0]:
                connection, _ = server.accept()
        while connection is not None and thread.is_alive():
            waiting = requests.frames > replies.frames
            # Busy design: only look; idle design: wait for the host in real time.
            readable = select.select([connection], [], [], 0 if waiting else idle_wait)[0]
            data = connection.recv(4096) if readable else b""
            if readable and not data:
                break                       # the host closed the connection
            if data:
                requests.feed(data)
                await uart.send(data)
            else:
                await Timer(byte_ps, unit="ps")
            out = uart.pending()
            if out:
                replies.feed(out)
                connection.sendall(out)
    finally:
        thread.join(timeout=join_seconds)
        if connection is not None:
            connection.close()
        server.close()
    if thread.is_alive():
        raise TimeoutError(f"the host code did not finish within {join_seconds} s of "
                           "closing the connection")
    if "failure" in outcome:
        raise outcome["failure"]
    return outcome.get("value")
