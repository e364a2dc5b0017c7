"""_handle.py — ownership of C objects: free on close or collection, keep
parents alive, refuse use after close, serialise calls on one object."""
import contextlib
import threading
import weakref


class Owner:
    """Holds one C pointer. `parents` are Python objects the C object borrows
    (a model under an engine, a bank or a trainer): holding them here keeps
    them alive for as long as this object lives, and registering here as their
    user makes their close() refuse while this object is open."""

    _what = "object"

    def __init__(self, handle, free_fn, parents=()):
        self._h = handle
        self._parents = tuple(parents)
        self._users = weakref.WeakSet()
        self._lock = threading.Lock()
        self._busy = 0
        self._finalizer = weakref.finalize(self, free_fn, handle)
        for p in self._parents:
            p._users.add(self)

    @property
    def closed(self):
        return self._h is None

    def _handle(self):
        h = self._h
        if h is None:
            raise ValueError("%s is closed" % self._what)
        return h

    @contextlib.contextmanager
    def _use(self, exclusive=False):
        """The C pointer for the duration of one call. exclusive: the C object
        is not safe for two concurrent calls (an engine, a bank, a trainer), so a
        second call from another thread is refused instead of racing."""
        with self._lock:
            h = self._handle()
            if exclusive and self._busy:
                raise ValueError("%s is busy in another call" % self._what)
            self._busy += 1
        try:
            yield h
        finally:
            with self._lock:
                self._busy -= 1

    def close(self):
        """Free the C object now (also done automatically when collected).
        Refused while an open object still uses this one, or during a call."""
        with self._lock:
            if self._h is None:
                return
            if self._busy:
                raise ValueError("%s is in use by a running call" % self._what)
            live = [u for u in self._users if not u.closed]
            if live:
                raise ValueError("%s is used by %d open object(s) (%s); close them first" %
                                 (self._what, len(live), ", ".join(sorted({type(u).__name__ for u in live}))))
            self._finalizer()
            self._h = None
            for p in self._parents:
                p._users.discard(self)
            self._parents = ()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def c_property(fn, doc=None, convert=None):
    """A read-only property that calls fn(pointer) on the object's C pointer."""
    def get(self):
        with self._use() as h:
            v = fn(h)
        return convert(v) if convert else v
    return property(get, doc=doc)
