"""A whole ctnet scenario through the Python client: a network, a sandbox
with a published port, connect and disconnect, one expected error, and
cleanup. It pauses once the port is published, so you can reach it
(e.g. `curl HOST:PORT` with a server in the sandbox's namespace), and goes
on when a line arrives on stdin.

    python3 scenario.py --unix /run/ctnet/ctnet.sock
    python3 scenario.py --tls ctnet.example:7443 --ca ca.pem --cert me.pem --key me-key.pem

Each step is printed as one JSON line.
"""
import argparse
import json
import sys

import ctnet


def say(**step) -> None:
    print(json.dumps(step), flush=True)


def client(args) -> ctnet.Client:
    if args.unix:
        return ctnet.connect_unix(args.unix)
    return ctnet.connect_tls(
        args.tls, ca=args.ca, cert=args.cert, key=args.key, server_name=args.server_name
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--unix", help="ctnet-api's Unix socket")
    where.add_argument("--tls", help="ctnet-api's TLS listener, HOST:PORT")
    p.add_argument("--ca")
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--server-name", default="localhost")
    p.add_argument("--prefix", default="pyex", help="names of what the scenario makes")
    p.add_argument("--subnet", default="172.31.90.0/24")
    p.add_argument("--subnet2", default="172.31.91.0/24")
    p.add_argument("--host-port", type=int, default=18080)
    args = p.parse_args()
    net, net2, web = (f"{args.prefix}-net", f"{args.prefix}-net2", f"{args.prefix}-web")
    with client(args) as c:
        say(step="whoami", name=c.who_am_i().name)
        n = c.create_network(net, subnet=args.subnet)
        say(step="network", id=n.id, subnet=n.subnet, gateway=n.gateway)
        sb = c.create_sandbox(web, networks=[net], publish=[f"{args.host_port}:80"])
        say(step="published", id=sb.id, netns=sb.netns_path, address=sb.interfaces[0].address,
            host_port=sb.ports[0].host_port)
        sys.stdin.readline()
        c.create_network(net2, subnet=args.subnet2)
        sb = c.connect(web, net2)
        say(step="connected", interfaces=[i.name for i in sb.interfaces])
        sb = c.disconnect(web, net2)
        say(step="disconnected", interfaces=[i.name for i in sb.interfaces])
        try:
            c.get_network(f"{args.prefix}-missing")
            say(step="error", code=None)
        except ctnet.NotFound as e:
            say(step="error", code=e.code.name, message=e.message)
        c.delete_sandbox(web)
        for name in (net2, net):
            c.delete_network(name)
        say(step="deleted", left=[s.name for s in c.list_sandboxes() if s.name == web])


if __name__ == "__main__":
    main()
