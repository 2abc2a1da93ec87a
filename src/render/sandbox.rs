//! Jinja renders in sandboxed worker processes. minijinja has no limit on memory (`~`, `*`,
//! `replace` and doubling through `namespace()` or recursive macros build strings of any
//! size) and an allocation failure aborts a process, so every Jinja render runs in a
//! `webhookd render-worker` process whose data segment is capped ([`Limits::memory_bytes`]).
//! A worker that dies fails only its render (reason `memory`), one that runs past the wall
//! time (plus a grace) is killed (reason `wall_time`); either is replaced by a fresh worker.
//!
//! Owns both sides: the parent's [`Sandbox`] (a small pool of idle workers, at most one per
//! render thread) and the worker's loop ([`serve_worker`]). Jobs and answers are JSON frames,
//! each preceded by its length (4 bytes, big-endian), on the worker's stdin and stdout.

use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::budget::{Failure, Limits, Reason};
use super::jinja::Jinja;
use super::templates::render_jinja;

/// The hidden subcommand that runs a worker.
const WORKER_COMMAND: &str = "render-worker";
/// Longest frame either side accepts (a job carries an event of at most the body limit, an
/// answer at most one capped output; this is far above both).
const MAX_FRAME: usize = 64 * 1024 * 1024;
/// Time a worker has beyond the wall time before the parent kills it: the worker stops
/// itself at its next check point after the wall time, which fuel keeps near.
const GRACE: Duration = Duration::from_millis(500);
/// Stack of the worker's render thread, as the render pool's threads.
const STACK_BYTES: usize = 32 * 1024 * 1024;

/// The worker's allocator (mimalloc, the binary's) reserves address space in arenas of 1 GiB
/// by default, more than the capped data segment holds, so the worker could not even start
/// its render thread; arenas of this size let it grow up to the cap.
const ARENA_RESERVE: (&str, &str) = ("MIMALLOC_ARENA_RESERVE", "32MiB");

/// One render a worker runs.
#[derive(Serialize, Deserialize)]
struct Job<'a> {
    limits: Limits,
    #[serde(borrow)]
    source: std::borrow::Cow<'a, str>,
    context: std::borrow::Cow<'a, serde_json::Value>,
    cap: usize,
}

/// The worker processes of one server; Send + Sync.
pub struct Sandbox {
    program: PathBuf,
    memory_bytes: u64,
    size: usize,
    idle: Mutex<Vec<Worker>>,
}

impl Sandbox {
    /// Workers of `program` (the webhookd executable) capped at `limits.memory_bytes`, at most
    /// `size` kept idle. Starts one worker and checks that it renders, so a missing or wrong
    /// executable is an error now, not at the first event. Call [`Sandbox::render`] only
    /// from long-lived threads (the render pool's): a worker ends with the thread that
    /// started it.
    pub fn start(program: &Path, size: usize, limits: &Limits) -> Result<Sandbox, String> {
        let sandbox = Sandbox {
            program: program.to_owned(),
            memory_bytes: limits.memory_bytes,
            size: size.max(1),
            idle: Mutex::new(Vec::new()),
        };
        let mut worker = sandbox.spawn().map_err(|e| sandbox.describe(&e))?;
        let context = serde_json::json!({"n": 1});
        match worker.run(limits, "{{ n + 1 }}", &context, 16) {
            Ok(Ok(text)) if text == "2" => {}
            Ok(answer) => {
                return Err(format!(
                    "the render worker {} answered {answer:?} instead of \"2\"",
                    program.display()
                ));
            }
            Err(stop) => {
                return Err(format!(
                    "the render worker {} did not answer: {stop:?}",
                    program.display()
                ));
            }
        }
        // Not kept: a worker ends with the thread that started it (PR_SET_PDEATHSIG), so the
        // workers that render are started by the render threads.
        drop(worker);
        Ok(sandbox)
    }

    fn describe(&self, err: &io::Error) -> String {
        format!(
            "cannot start the render worker {}: {err}",
            self.program.display()
        )
    }

    fn spawn(&self) -> io::Result<Worker> {
        let mut child = Command::new(&self.program)
            .arg(WORKER_COMMAND)
            .arg("--memory-bytes")
            .arg(self.memory_bytes.to_string())
            .arg("--parent")
            .arg(std::process::id().to_string())
            .env(ARENA_RESERVE.0, ARENA_RESERVE.1)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            // An allocation failure prints one line there; the render error says it.
            .stderr(Stdio::null())
            .spawn()?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(io::Error::other("the worker's pipes were not opened"));
        };
        Ok(Worker {
            child,
            stdin,
            stdout,
        })
    }

    fn give_back(&self, worker: Worker) {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < self.size {
            idle.push(worker);
        }
    }

    /// Renders the Jinja template `source` with `context` into at most `cap` bytes in a
    /// worker, within `limits`.
    pub fn render(
        &self,
        limits: &Limits,
        source: &str,
        context: &serde_json::Value,
        cap: usize,
    ) -> Result<String, Failure> {
        let idle = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let mut worker = match idle {
            Some(worker) => worker,
            None => self.spawn().map_err(|e| {
                tracing::error!(error = %self.describe(&e), "a Jinja render failed");
                Failure::error("Template Error: the render process could not start".to_owned())
            })?,
        };
        match worker.run(limits, source, context, cap) {
            Ok(answer) => {
                self.give_back(worker);
                answer
            }
            Err(Stop::Late) => Err(Failure::exceeded(Reason::Time, limits, cap)),
            Err(Stop::Died(why)) => {
                let status = worker.end();
                tracing::warn!(%why, ?status, "a render worker died; it is replaced");
                Err(Failure::exceeded(Reason::Memory, limits, cap))
            }
        }
    }
}

/// Why a worker gave no answer.
#[derive(Debug)]
enum Stop {
    /// It ran past the wall time and its grace.
    Late,
    /// It ended or broke the protocol.
    Died(String),
}

/// One worker process; killed when dropped.
struct Worker {
    child: Child,
    stdin: ChildStdin,
    stdout: ChildStdout,
}

impl Worker {
    fn run(
        &mut self,
        limits: &Limits,
        source: &str,
        context: &serde_json::Value,
        cap: usize,
    ) -> Result<Result<String, Failure>, Stop> {
        let deadline = Instant::now() + limits.wall_time + GRACE;
        let job = Job {
            limits: *limits,
            source: source.into(),
            context: std::borrow::Cow::Borrowed(context),
            cap,
        };
        let frame = serde_json::to_vec(&job).map_err(|e| Stop::Died(e.to_string()))?;
        write_frame(&mut self.stdin, &frame).map_err(|e| Stop::Died(e.to_string()))?;
        let answer = read_frame_by(&mut self.stdout, deadline)?;
        serde_json::from_slice(&answer).map_err(|e| Stop::Died(e.to_string()))
    }

    /// Kills the worker (if it still runs) and reaps it.
    fn end(&mut self) -> Option<std::process::ExitStatus> {
        let _ = self.child.kill();
        self.child.wait().ok()
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.end();
    }
}

fn write_frame(out: &mut impl Write, frame: &[u8]) -> io::Result<()> {
    let len = u32::try_from(frame.len()).map_err(io::Error::other)?;
    out.write_all(&len.to_be_bytes())?;
    out.write_all(frame)?;
    out.flush()
}

/// Reads one frame from the worker, giving up at `deadline`.
fn read_frame_by(from: &mut ChildStdout, deadline: Instant) -> Result<Vec<u8>, Stop> {
    let mut len = [0; 4];
    read_exact_by(from, &mut len, deadline)?;
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(Stop::Died(format!("a {len} byte answer")));
    }
    let mut frame = vec![0; len];
    read_exact_by(from, &mut frame, deadline)?;
    Ok(frame)
}

fn read_exact_by(from: &mut ChildStdout, buf: &mut [u8], deadline: Instant) -> Result<(), Stop> {
    let mut filled = 0;
    while filled < buf.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Stop::Late);
        }
        let mut poll = libc::pollfd {
            fd: from.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let millis = libc::c_int::try_from(left.as_millis() + 1).unwrap_or(libc::c_int::MAX);
        // SAFETY: one valid pollfd, for the duration of the call.
        let ready = unsafe { libc::poll(&mut poll, 1, millis) };
        if ready < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(Stop::Died(err.to_string()));
        }
        if ready == 0 {
            continue;
        }
        match from.read(&mut buf[filled..]) {
            Ok(0) => return Err(Stop::Died("it closed its output".to_owned())),
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Stop::Died(e.to_string())),
        }
    }
    Ok(())
}

/// The worker: caps its data segment at `memory_bytes`, ends when `parent` does, and answers
/// render jobs on stdin until stdin closes.
pub fn serve_worker(memory_bytes: u64, parent: u32) -> io::Result<()> {
    // SAFETY: prctl and getppid take no pointers.
    unsafe {
        if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
            return Err(io::Error::last_os_error());
        }
        // The parent may have ended before the request took effect.
        if u32::try_from(libc::getppid()).ok() != Some(parent) {
            return Err(io::Error::other("the parent process has ended"));
        }
    }
    let limit = libc::rlimit {
        rlim_cur: memory_bytes,
        rlim_max: memory_bytes,
    };
    // SAFETY: a valid rlimit for the duration of the call.
    if unsafe { libc::setrlimit(libc::RLIMIT_DATA, &limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    std::thread::Builder::new()
        .name("webhookd-render-worker".to_owned())
        .stack_size(STACK_BYTES)
        .spawn(answer_jobs)?
        .join()
        .map_err(|_| io::Error::other("the render thread panicked"))?
}

fn answer_jobs() -> io::Result<()> {
    let mut input = io::stdin().lock();
    let mut output = io::stdout().lock();
    let mut engine: Option<(Limits, Jinja)> = None;
    loop {
        let mut len = [0; 4];
        match input.read_exact(&mut len) {
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
            other => other?,
        }
        let len = u32::from_be_bytes(len) as usize;
        if len > MAX_FRAME {
            return Err(io::Error::other(format!("a {len} byte job")));
        }
        let mut frame = vec![0; len];
        input.read_exact(&mut frame)?;
        let job: Job<'_> = serde_json::from_slice(&frame).map_err(io::Error::other)?;
        let jinja = match &mut engine {
            Some((limits, jinja)) if *limits == job.limits => jinja,
            _ => &engine.insert((job.limits, Jinja::new(&job.limits))).1,
        };
        let answer = render_jinja(jinja, &job.limits, &job.source, &job.context, job.cap);
        drop(job);
        drop(frame);
        write_frame(&mut output, &serde_json::to_vec(&answer)?)?;
    }
}
