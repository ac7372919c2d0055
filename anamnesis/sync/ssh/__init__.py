"""The SSH transport (an adapter): asyncssh connections to a hub, and git's ssh program over them.

git does the data; this package only gives git a pipe to the hub's `git-upload-pack` and
`git-receive-pack`, through `GIT_SSH_COMMAND` (with `GIT_SSH_VARIANT=ssh`):

- `connection`: what a connection trusts and how patient it is; typed failures;
- `hubrepo`: the hub's bare repository (there? where is main? create it);
- `mux`: one connection per cycle shared by every git command (the default);
- `bridge`: a process per git command, for where descriptors cannot be passed;
- `transport`: `SshTransport`, what the sync engine is handed (`anamnesis.sync.wiring` picks it).

Only this package (through `sshlib`) imports asyncssh; the sync core never imports it.
"""

from __future__ import annotations

from anamnesis.sync.hostkeys import HostKeyProbe
from anamnesis.sync.ssh.bridge import bridge_env, parse_ssh_argv
from anamnesis.sync.ssh.connection import client_options, connect_hub, probe_host_key, trusted_host_files
from anamnesis.sync.ssh.hubrepo import ask_hub_main, ensure_hub_repo, hub_main, hub_repo_exists, init_commands
from anamnesis.sync.ssh.mux import HubLinkMux, can_share_connection
from anamnesis.sync.ssh.transport import SshTransport, open_hub_link

__all__ = [
    "HostKeyProbe",
    "HubLinkMux",
    "SshTransport",
    "ask_hub_main",
    "bridge_env",
    "can_share_connection",
    "client_options",
    "connect_hub",
    "ensure_hub_repo",
    "hub_main",
    "hub_repo_exists",
    "init_commands",
    "open_hub_link",
    "parse_ssh_argv",
    "probe_host_key",
    "trusted_host_files",
]
