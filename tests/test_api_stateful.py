"""A hypothesis state machine over a live pair of nodes: a synchronous
sender and a receiver with few slots that releases in random order."""

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)
from support.nodes import NodeFactory, addr
from support.payloads import number_of, numbered


class SlotsMachine(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.nodes = NodeFactory()
        self.rx = None
        self.tx = None

    @initialize(slots=st.integers(min_value=1, max_value=4), sync=st.booleans())
    def start(self, slots, sync):
        self.slots = slots
        self.sync = sync
        self.rx = self.nodes(synchronous=False, max_slots=slots, auto_release=False)
        self.tx = self.nodes(synchronous=sync, timeout=20.0)
        self.futs = []  # one per message sent, index = number
        self.sizes = []
        self.held = {}  # number -> Message
        self.received = 0

    def outstanding(self):
        return len(self.futs) - self.received

    @rule(sizes=st.lists(st.integers(min_value=0, max_value=5000), min_size=1, max_size=5))
    def send(self, sizes):
        for s in sizes:
            i = len(self.futs)
            self.futs.append(self.tx.send_async(addr(self.rx), numbered(i, s), header=b"%d" % s))
            self.sizes.append(s)

    @precondition(lambda self: self.rx is not None)
    @rule()
    def receive(self):
        if self.outstanding() == 0 or len(self.held) >= self.slots:
            return
        msg = self.rx.recv(timeout=10.0)  # a free slot and a message in flight
        i = number_of(msg.data)
        assert i == self.received, f"expected message {self.received}, got {i}"
        assert msg.data == numbered(i, self.sizes[i])
        assert msg.header == b"%d" % self.sizes[i]
        self.held[i] = msg
        self.received += 1

    @precondition(lambda self: self.rx is not None)
    @rule(data=st.data())
    def release(self, data):
        if not self.held:
            return
        i = data.draw(st.sampled_from(sorted(self.held)))
        self.held.pop(i).release()
        assert self.futs[i].result(timeout=10.0) is None

    @precondition(lambda self: self.rx is not None)
    @rule()
    def full_means_nothing_more(self):
        if len(self.held) < self.slots or self.outstanding() == 0:
            return
        with pytest.raises(TimeoutError):
            extra = self.rx.recv(timeout=0.2)
            extra.release()

    @invariant()
    def held_sends_not_done(self):
        if self.rx is None or not self.sync:
            return
        for i in self.held:
            assert not self.futs[i].done(), f"send {i} completed before its release"

    def teardown(self):
        try:
            if self.rx is None:
                return
            for m in self.held.values():
                m.release()
            while self.received < len(self.futs):
                m = self.rx.recv(timeout=10.0)
                assert number_of(m.data) == self.received
                m.release()
                self.received += 1
            for f in self.futs:
                assert f.result(timeout=10.0) is None
        finally:
            self.nodes.close()


SlotsMachine.TestCase.settings = settings(
    max_examples=25,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_slots_state_machine = SlotsMachine.TestCase
