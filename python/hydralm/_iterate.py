"""_iterate.py — turn a callback-driven generation into an iterator."""
import queue
import threading

_DONE = object()


def iterate_tokens(run):
    """run(on_token) generates, calling on_token(tok) for each token. Yields
    the tokens as they arrive; closing the generator early (break, Ctrl-C)
    makes the next on_token return True, which stops the C loop."""
    q, stop = queue.SimpleQueue(), threading.Event()
    box = {}

    def on_token(tok):
        q.put(tok)
        return stop.is_set()

    def worker():
        try:
            run(on_token)
        except BaseException as e:
            box["error"] = e
        q.put(_DONE)

    th = threading.Thread(target=worker, name="hydralm-generate", daemon=True)
    th.start()
    try:
        while True:
            tok = q.get()
            if tok is _DONE:
                break
            yield tok
    finally:
        stop.set()
        th.join()
    if "error" in box:
        raise box["error"]
