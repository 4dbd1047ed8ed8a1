"""`memrl hook`: Claude Code (and Codex) hooks that close the learning loop by themselves.

A hook process stays small (standard library only on its path: ~40 ms of interpreter and
imports) and asks a warm per-database daemon for the work that needs the embedding model
(recall, report, stats). Modules, one concern each:

- `payload`: read and check one hook payload from stdin
- `verifiers`: which shell commands are tests or checks, and what their outcome was
- `state`: per-session task state (session -> task, verdicts, reminder), one SQLite file
- `locations`: where the database, the daemon's socket, lock, log and state live
- `transport`: talk to the daemon, start it when it is missing, detect a dead one
- `daemon` / `service`: the warm process and the memory operations it serves
- `events`: what each hook event does
- `output`: the JSON answers the host expects
- `client`: the entry point behind `memrl hook`
"""
