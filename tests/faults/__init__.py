"""Fault injection: consumers killed mid-stream, connections cut at chosen
bytes, senders and receivers closed with messages in flight, deadlocks of
synchronous peers, connection races.  chirp's failure semantics hold: in
synchronous mode a send succeeds only if the receiver got (and released)
the message, every send completes, and nothing hangs."""
