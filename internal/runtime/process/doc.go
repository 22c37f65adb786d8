// Package process runs functions as local executables that speak
// OpenWhisk's actionloop protocol, the protocol of OpenWhisk's native
// ("blackbox") actions:
//
//   - The code is an executable (a script with a shebang or a static
//     binary) or a zip with an executable named exec at its root. It is
//     unpacked once per code digest under Options.WorkDir (a zip: at most
//     Options.MaxUnzipFiles entries and Options.MaxUnzipBytes in all,
//     regular files and directories only, no absolute or ".." paths).
//     Forget removes it when the function is deleted. A zip made by
//     ActionCode (an OpenWhisk nodejs or python action) holds, instead of
//     exec, dedupfn's launcher for its language, run by Options.Node or
//     Options.Python (launchers.go).
//   - Each process runs under a shim (see shim.go) that kills the action
//     and everything it started, setsid children included, when the
//     action exits, when the runtime stops it, and when the server dies,
//     even by SIGKILL.
//   - The process is started once and kept warm, with __OW_WAIT_FOR_ACK
//     set: it must write {"ok":true} and a newline on file descriptor 3
//     when ready (within Options.AckTimeout), else the start is a
//     runtime.ClassInit error.
//   - Each activation is one JSON line on its stdin,
//     {"value":{...},"namespace":"ns","action_name":"/ns/name",
//     "activation_id":"...","deadline":"<ms since epoch>"}, answered by
//     exactly one JSON line (object or array) on fd 3. One activation at a
//     time per process; up to Options.MaxWarm processes per function
//     version serve concurrent activations.
//   - stdout and stderr are the activation's logs. An action may end each
//     activation's output with the line XXX_THE_END_OF_A_WHISK_ACTIVATION_XXX
//     on both streams (as OpenWhisk's runtimes do); then lines are
//     attributed exactly. Otherwise the logs are what had arrived when the
//     result line did.
//
// The environment is built from scratch, as in OpenWhisk (nothing is
// inherited from the server, whose secrets stay out of it): the function's
// deploy-time variables (Function.Config keys "env.NAME") plus
// __OW_WAIT_FOR_ACK, __OW_ACTION_NAME, __OW_NAMESPACE and __OW_API_HOST
// (when configured). PATH is NOT inherited: scripts must use absolute
// shebangs (#!/bin/bash) and absolute command paths, or set env.PATH at
// deploy. Per-activation values (activation id, deadline) travel in the
// JSON line, from which actionloop launchers export __OW_ACTIVATION_ID and
// __OW_DEADLINE; the process environment is fixed at start. The action's
// parent is its shim, whose /proc/PID/environ is the action's own. The
// server's is readable through /proc by any process of the same user, so
// unless Options.ExecUser runs actions as another user (serve
// --exec-user), a same-uid action can read the server's secrets there.
//
// A result line on fd 3 is at most Options.MaxResultBytes; a longer one
// fails the activation with runtime.ClassFunction.
//
// The input object is described in "value": bucket, key, size, etag,
// sha256, content_type, get_url, put_url, output_bucket, output_key (as
// runtime.ObjectRef), the deploy-time params, and, when the object is at
// most Options.InlineLimit bytes, its bytes base64-encoded as "body".
//
// A direct invocation (runtime.Invocation.Value: an OpenWhisk action
// invoked on its parameters) has no object: "value" is exactly the
// parameters, and the result line, one JSON object, is the result
// (runtime.DirectResult; a "body" in it is only a field).
//
// Output convention: a result object with a string field "body" holding
// valid base64 is an output object: its decoded bytes go to
// Invocation.Output (Result.OutputWritten), and the rest of the result
// (without "body") is Result.Result. Any other result is returned as
// Result.Result with OutputWritten false: the pipeline stores it (or finds
// what the action PUT to put_url).
//
// The files follow the parts: process.go (Runtime, Invoke, one
// activation, Forget), pool.go (the warm processes of a version), proc.go
// (one process, its pipes and fd 3), shim.go, logs.go (stdout and stderr
// per activation), unpack.go (code on disk, zip limits), user.go
// (Options.ExecUser) and launchers.go (OpenWhisk action kinds: ActionCode).
package process
