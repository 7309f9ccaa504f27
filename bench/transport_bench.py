"""Micro-benchmark: messages per second between two TcpTransports on loopback.

How: node 2 (the receiver) runs in its own process with its own event loop, as it would in a
cluster, and answers with one ``Decided`` once it has received all ``--messages``; node 1
sends ``Accept`` messages in bursts of ``--burst`` (yielding to the loop between bursts, and
waiting while more than ``--queue-high`` frames are queued so that nothing is dropped) and
stops the clock when the answer arrives.  The writer coalesces whatever has queued into one
write, so the figure includes batching; ``frames/write`` shows how much.  The codec alone
(encode and decode, no sockets) is timed too, as the ceiling the transport works under.

    .venv/bin/python bench/transport_bench.py [--messages 200000] [--value-bytes 16]
                                              [--burst 1024] [--loop auto|asyncio]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import time
from collections.abc import Callable
from multiprocessing.connection import Connection

from pypaxos.core.messages import Accept, Decided, Message
from pypaxos.core.types import Ballot
from pypaxos.transport.codec import Codec
from pypaxos.transport.tcp import TcpConfig, TcpTransport, preferred_loop_factory

CODEC = Codec[Message](Message)
CONFIG = TcpConfig(send_queue_frames_max=65536, send_queue_bytes_max=256 << 20)


LoopFactory = Callable[[], asyncio.AbstractEventLoop]


def loop_factory(name: str) -> LoopFactory:
    return preferred_loop_factory() if name == "auto" else asyncio.new_event_loop


def receiver_main(pipe: Connection, messages: int, loop_name: str) -> None:
    async def run() -> None:
        done = asyncio.Event()
        count = 0
        transport: TcpTransport[Message]

        def deliver(msg: Message) -> None:
            nonlocal count
            count += 1
            if count == messages:
                transport.send(1, Decided(2, "done"))
                done.set()

        transport = TcpTransport(2, "127.0.0.1:0", {}, CODEC, deliver, config=CONFIG)
        await transport.start()
        pipe.send(transport.listen_address)
        sender_address = pipe.recv()
        transport.set_peer(1, sender_address)
        await done.wait()
        # Wait (off the loop, which must keep sending the answer) until the sender has it.
        await asyncio.to_thread(pipe.recv)
        await transport.close()

    with asyncio.Runner(loop_factory=loop_factory(loop_name)) as runner:
        runner.run(run())


async def send_all(
    pipe: Connection, messages: int, value: str, burst: int, queue_high: int
) -> tuple[float, TcpTransport[Message]]:
    answered = asyncio.Event()
    transport = TcpTransport(1, "127.0.0.1:0", {}, CODEC, lambda m: answered.set(), config=CONFIG)
    await transport.start()
    transport.set_peer(2, pipe.recv())
    pipe.send(transport.listen_address)
    batch = [Accept(1, Ballot(i, 1), value) for i in range(messages)]
    start = time.perf_counter()
    for offset in range(0, messages, burst):
        while transport.queued_frames(2) > queue_high:
            await asyncio.sleep(0)
        for msg in batch[offset : offset + burst]:
            transport.send(2, msg)
        await asyncio.sleep(0)
    await answered.wait()
    elapsed = time.perf_counter() - start
    pipe.send("stop")
    await transport.close()
    return elapsed, transport


def bench_codec(messages: int, value: str) -> tuple[float, float]:
    msgs: list[Message] = [Accept(1, Ballot(i, 1), value) for i in range(messages)]
    start = time.perf_counter()
    frames = [CODEC.encode_frame(m) for m in msgs]
    encode_s = time.perf_counter() - start
    stream = b"".join(frames)
    decoder = CODEC.decoder()
    count = 0
    last: list[Message] = []
    start = time.perf_counter()
    for offset in range(0, len(stream), 65536):
        last = decoder.feed(stream[offset : offset + 65536])
        count += len(last)  # not kept: a receiver hands messages on, it does not hoard them
    decode_s = time.perf_counter() - start
    assert count == messages and last[-1] == msgs[-1]
    return messages / encode_s, messages / decode_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--value-bytes", type=int, default=16)
    parser.add_argument("--burst", type=int, default=1024)
    parser.add_argument("--queue-high", type=int, default=16384)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--loop", choices=["auto", "asyncio"], default="auto", help="auto: uvloop if installed"
    )
    args = parser.parse_args()
    value = "v" * args.value_bytes
    factory = loop_factory(args.loop)
    loop_name = factory.__module__
    frame_bytes = len(CODEC.encode_frame(Accept(1, Ballot(args.messages, 1), value)))
    print(
        f"transport bench: {args.messages} Accept messages of ~{frame_bytes} B per frame, "
        f"burst {args.burst}, loop {loop_name}, {args.runs} runs"
    )
    encode_rate, decode_rate = bench_codec(args.messages, value)
    print(f"codec alone: encode {encode_rate:,.0f} msg/s, decode {decode_rate:,.0f} msg/s")
    ctx = mp.get_context("spawn")
    for run in range(1, args.runs + 1):
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=receiver_main, args=(child, args.messages, args.loop))
        proc.start()
        with asyncio.Runner(loop_factory=factory) as runner:
            elapsed, transport = runner.run(
                send_all(parent, args.messages, value, args.burst, args.queue_high)
            )
        proc.join(timeout=30)
        stats = transport.peer_stats(2)
        print(
            f"run {run}: {args.messages / elapsed:,.0f} msg/s "
            f"({stats.bytes_sent / elapsed / 1e6:,.1f} MB/s), "
            f"{stats.frames_sent / max(stats.writes, 1):,.0f} frames/write, "
            f"dropped {stats.frames_dropped}"
        )


if __name__ == "__main__":
    main()
