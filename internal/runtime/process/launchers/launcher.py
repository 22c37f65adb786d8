# dedupfn's actionloop launcher for the python kinds (see launchers.go):
# it loads the action named by dedupfn-action.json in its working
# directory, acks on fd 3, then runs one activation per line of stdin,
# answering each with one JSON line on fd 3.
import importlib.util
import json
import os
import sys
import traceback

SENTINEL = "XXX_THE_END_OF_A_WHISK_ACTIVATION_XXX"


def load(manifest):
    """The action's main function: from a source file, or a zip's __main__.py
    (its other files importable beside it)."""
    entry = os.path.abspath(manifest["entry"])
    sys.path.insert(0, os.path.dirname(entry))
    # Not named __main__: a script's "if __name__ == '__main__':" block
    # must not run when it is loaded as an action.
    spec = importlib.util.spec_from_file_location("dedupfn_action", entry)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["dedupfn_action"] = mod
    spec.loader.exec_module(mod)
    fn = getattr(mod, manifest["main"], None)
    if not callable(fn):
        raise AttributeError("the action has no function %s" % manifest["main"])
    return fn


def main():
    results = os.fdopen(3, "w")
    with open("dedupfn-action.json") as f:
        manifest = json.load(f)
    try:
        fn = load(manifest)
    except BaseException as e:
        traceback.print_exc()
        if os.environ.get("__OW_WAIT_FOR_ACK"):
            results.write(json.dumps({"ok": False, "error": str(e)}) + "\n")
            results.flush()
        sys.exit(1)
    if os.environ.get("__OW_WAIT_FOR_ACK"):
        results.write('{"ok":true}\n')
        results.flush()
    while True:
        line = sys.stdin.readline()
        if not line:
            return
        if not line.strip():
            continue
        try:
            msg = json.loads(line)
            for k, v in msg.items():
                if k != "value":
                    os.environ["__OW_" + k.upper()] = str(v)
            result = fn(msg.get("value") or {})
            if not isinstance(result, dict):
                result = {"error": "The action did not return a dictionary."}
            out = json.dumps(result)
        except MemoryError:
            # Out of memory is the platform's limit, not the action's
            # answer: die, so that the runtime reports (and retries) it.
            traceback.print_exc()
            sys.stderr.flush()
            os._exit(1)
        except BaseException as e:
            traceback.print_exc()
            out = json.dumps({"error": str(e) or type(e).__name__})
        sys.stdout.flush()
        print(SENTINEL, flush=True)
        print(SENTINEL, file=sys.stderr, flush=True)
        results.write(out + "\n")
        results.flush()


main()
