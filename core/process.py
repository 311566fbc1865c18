"""This process's name in rows it owns (turns, runs, leases): host and pid."""

import os
import socket

PROCESS_NAME = f"{socket.gethostname()}:{os.getpid()}"
