#!/usr/bin/env python3
"""A TCP proxy that counts the bytes clients send upstream (what a push uploads).

Usage: count_proxy.py LISTEN_PORT UPSTREAM_PORT COUNT_FILE
COUNT_FILE always holds the running total of client->server bytes (rewritten every 100 ms),
so connections kept alive are counted too. Used by scripts/bench-publish.sh, never by the
tool itself.
"""
import os
import socket
import sys
import threading
import time

listen_port, upstream_port, count_file = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
total = [0]
lock = threading.Lock()


def pipe(source, destination, count):
    try:
        while True:
            data = source.recv(65536)
            if not data:
                break
            if count:
                with lock:
                    total[0] += len(data)
            destination.sendall(data)
    except OSError:
        pass
    finally:
        for sock in (source, destination):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def handle(client):
    upstream = socket.create_connection(("127.0.0.1", upstream_port))
    threading.Thread(target=pipe, args=(client, upstream, True), daemon=True).start()
    threading.Thread(target=pipe, args=(upstream, client, False), daemon=True).start()


def report():
    while True:
        with lock:
            value = total[0]
        with open(count_file + ".tmp", "w") as out:
            out.write(f"{value}\n")
        os.replace(count_file + ".tmp", count_file)
        time.sleep(0.1)


threading.Thread(target=report, daemon=True).start()
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("127.0.0.1", listen_port))
server.listen(64)
while True:
    connection, _ = server.accept()
    threading.Thread(target=handle, args=(connection,), daemon=True).start()
