"""`python -m anamnesis.sync.git_ssh`: git's ssh program when no shared connection is running.

git runs it as `GIT_SSH_COMMAND` (with `GIT_SSH_VARIANT=ssh`) for one network command; it
opens its own asyncssh connection with the same host-key and key policy as the sync, using
the home named by `ANAMNESIS_HOME`. A user can point their own git at it too:
`GIT_SSH_COMMAND="python -m anamnesis.sync.git_ssh" GIT_SSH_VARIANT=ssh git -C ~/.anamnesis/memory pull`.
"""

from __future__ import annotations

from anamnesis.sync.ssh.bridge import bridge_main

if __name__ == "__main__":
    bridge_main()
