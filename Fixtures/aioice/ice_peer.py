"""The aioice side of peerd's ICE interop test (Tests/ICETests/Agent/ICEInteropTests.swift) and of
the ICE benchmark against aioice (Benchmarks/peerd-bench/ICEBenchmarks.swift).

Gathers a loopback host candidate, prints its description as one JSON line, reads the other
side's from stdin, connects, optionally echoes one datagram (prefixed "echo:"), and stays up a
little longer so the other side's consent checks are answered.

    python3 ice_peer.py controlling|controlled [--echo] [--connect-timeout S] [--linger S]
"""
import argparse
import asyncio
import json
import sys

import aioice
import aioice.ice

aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"]


async def main(arguments):
    conn = aioice.Connection(ice_controlling=arguments.role == "controlling", use_ipv6=False)
    await conn.gather_candidates()
    print(json.dumps({"ufrag": conn.local_username, "pwd": conn.local_password,
                      "candidates": [c.to_sdp() for c in conn.local_candidates]}), flush=True)
    line = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    remote = json.loads(line)
    conn.remote_username = remote["ufrag"]
    conn.remote_password = remote["pwd"]
    for sdp in remote["candidates"]:
        await conn.add_remote_candidate(aioice.Candidate.from_sdp(sdp))
    await conn.add_remote_candidate(None)
    await asyncio.wait_for(conn.connect(), arguments.connect_timeout)
    if arguments.echo:
        data = await asyncio.wait_for(conn.recv(), 10)
        await conn.send(b"echo:" + data)
    await asyncio.sleep(arguments.linger)
    await conn.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("role", choices=["controlling", "controlled"])
    parser.add_argument("--echo", action="store_true")
    parser.add_argument("--connect-timeout", type=float, default=20)
    parser.add_argument("--linger", type=float, default=1)
    asyncio.run(main(parser.parse_args()))
