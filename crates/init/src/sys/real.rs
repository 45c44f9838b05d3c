//! The real system calls, through `nix` (`unsafe` once: resetting a
//! child's signal mask between fork and exec, see [`unblock_signals`]).

use std::collections::{HashMap, VecDeque};
use std::ffi::CString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::Duration;

use nix::errno::Errno;
use nix::kmod::{ModuleInitFlags, finit_module};
use nix::mount::{MntFlags, mount, umount2};
use nix::sys::reboot::{RebootMode, reboot};
use nix::sys::resource::{Resource, setrlimit};
use nix::sys::signal::{Signal, kill};
use nix::sys::stat::{Mode, SFlag, makedev, mknod};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::time::{ClockId, clock_gettime};
use nix::unistd::Pid;

use super::{Cmd, DirEntry, Exit, LinkOp, MountSpec, Output, PowerAction, Sys};
use crate::netlink;

/// `MODULE_INIT_COMPRESSED_FILE`: the kernel decompresses the module itself.
const MODULE_INIT_COMPRESSED_FILE: u32 = 4;
/// How many exit statuses of processes nobody asked about are kept.
const UNCLAIMED_LIMIT: usize = 4096;

fn errno(e: Errno) -> io::Error {
    io::Error::from_raw_os_error(e as i32)
}

/// Serialises console writes so lines from several threads never interleave.
fn console_lock() -> &'static Mutex<()> {
    static LOCK: OnceLock<Mutex<()>> = OnceLock::new();
    LOCK.get_or_init(|| Mutex::new(()))
}

/// Write one line to the console (the init's stdout).
pub fn console_line(line: &str) {
    let _guard = console_lock().lock();
    let mut out = io::stdout().lock();
    // The console is all we have: if it fails there is nowhere to report it.
    let _ = out.write_all(line.as_bytes());
    let _ = out.write_all(b"\n");
    let _ = out.flush();
}

#[derive(Default)]
struct ReapState {
    exited: HashMap<i32, Exit>,
    order: VecDeque<i32>,
}

/// Reaps every child (PID 1 inherits every orphan) and hands statuses to waiters.
struct Reaper {
    state: Mutex<ReapState>,
    cond: Condvar,
}

impl Reaper {
    fn run(&self) {
        loop {
            match waitpid(None::<Pid>, None) {
                Ok(WaitStatus::Exited(pid, code)) => self.record(pid.as_raw(), Exit::Code(code)),
                Ok(WaitStatus::Signaled(pid, sig, _)) => {
                    self.record(pid.as_raw(), Exit::Signal(sig as i32))
                }
                Ok(_) | Err(Errno::EINTR) => {}
                Err(_) => {
                    // No children right now: look again shortly.
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        }
    }

    fn record(&self, pid: i32, exit: Exit) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.exited.insert(pid, exit);
        state.order.push_back(pid);
        while state.order.len() > UNCLAIMED_LIMIT {
            if let Some(old) = state.order.pop_front() {
                state.exited.remove(&old);
            }
        }
        self.cond.notify_all();
    }

    fn wait(&self, pid: i32) -> Exit {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(exit) = state.exited.remove(&pid) {
                state.order.retain(|p| *p != pid);
                return exit;
            }
            state = self.cond.wait(state).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// [`Reaper::wait`] until `deadline_ms` on [`boottime_ms`]'s clock.
    fn wait_until(&self, pid: i32, deadline_ms: u64) -> Option<Exit> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(exit) = state.exited.remove(&pid) {
                state.order.retain(|p| *p != pid);
                return Some(exit);
            }
            let left = deadline_ms.saturating_sub(boottime_ms());
            if left == 0 {
                return None;
            }
            state = self
                .cond
                .wait_timeout(state, Duration::from_millis(left))
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    fn reaped(&self, pid: i32) -> bool {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.exited.contains_key(&pid)
    }
}

/// Milliseconds since boot, suspend included (the timeline's clock).
fn boottime_ms() -> u64 {
    clock_gettime(ClockId::CLOCK_BOOTTIME)
        .map(|t| t.tv_sec() as u64 * 1000 + t.tv_nsec() as u64 / 1_000_000)
        .unwrap_or(0)
}

/// The real system.
pub struct RealSys {
    reaper: Arc<Reaper>,
}

impl std::fmt::Debug for RealSys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RealSys")
    }
}

impl RealSys {
    /// Start the reaper thread. Call once, in PID 1, after blocking signals.
    pub fn start() -> io::Result<RealSys> {
        let reaper = Arc::new(Reaper {
            state: Mutex::new(ReapState::default()),
            cond: Condvar::new(),
        });
        let thread_reaper = Arc::clone(&reaper);
        std::thread::Builder::new()
            .name("reaper".into())
            .spawn(move || thread_reaper.run())?;
        Ok(RealSys { reaper })
    }

    /// For a short-lived process that starts no children (the kernel's
    /// modprobe): no reaper thread.
    pub fn without_children() -> RealSys {
        RealSys {
            reaper: Arc::new(Reaper {
                state: Mutex::new(ReapState::default()),
                cond: Condvar::new(),
            }),
        }
    }

    fn stdio(&self, output: &Output, name: &str) -> io::Result<Stdio> {
        match output {
            Output::Inherit => Ok(Stdio::inherit()),
            Output::Null => Ok(Stdio::null()),
            Output::Log { .. } => {
                let (reader, writer) = io::pipe()?;
                self.log_thread(reader, output, name)?;
                Ok(Stdio::from(writer))
            }
        }
    }

    /// Copy what `reader` gets into the log `output` names, on a thread.
    fn log_thread(&self, reader: io::PipeReader, output: &Output, name: &str) -> io::Result<()> {
        let Output::Log { path, console, cap } = output else {
            return Ok(());
        };
        let log = CappedLog::open(path.clone(), *cap)?;
        let console = console.clone();
        std::thread::Builder::new()
            .name(format!("log-{name}"))
            .spawn(move || copy_log(reader, log, console.as_deref()))?;
        Ok(())
    }
}

/// Give the child an empty signal mask. PID 1 blocks the signals it waits
/// for in every thread, and a child inherits the mask across `exec`:
/// std's `Command` does not reset it, so without this a daemon would never
/// see the SIGTERM that stops it (nor a container runtime its signals).
#[allow(unsafe_code)]
fn unblock_signals(command: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs in the forked child before `exec`, touches
    // no memory of the parent's and makes one async-signal-safe system
    // call (`sigprocmask`).
    unsafe {
        command.pre_exec(|| {
            nix::sys::signal::sigprocmask(
                nix::sys::signal::SigmaskHow::SIG_SETMASK,
                Some(&nix::sys::signal::SigSet::empty()),
                None,
            )
            .map_err(io::Error::from)
        });
    }
}

/// A log file that is rotated to `<path>.0` before it grows beyond its cap:
/// the init's service and daemon logs, and the service manager's for
/// services in containerd.
#[derive(Debug)]
pub struct CappedLog {
    path: PathBuf,
    file: File,
    size: u64,
    cap: u64,
}

impl CappedLog {
    /// Open `path` for appending (mode 0640), making its directory; `cap` 0
    /// is no cap.
    pub fn open(path: PathBuf, cap: u64) -> io::Result<CappedLog> {
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)?;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o640)
            .open(&path)?;
        let size = file.metadata()?.len();
        Ok(CappedLog {
            path,
            file,
            size,
            cap,
        })
    }

    /// Append `data`, first renaming a file it would grow beyond the cap.
    pub fn write(&mut self, data: &[u8]) -> io::Result<()> {
        if self.cap > 0 && self.size + data.len() as u64 > self.cap {
            let mut old = self.path.clone().into_os_string();
            old.push(".0");
            fs::rename(&self.path, &old)?;
            self.file = OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o640)
                .open(&self.path)?;
            self.size = 0;
        }
        self.file.write_all(data)?;
        self.size += data.len() as u64;
        Ok(())
    }
}

fn copy_log(mut reader: io::PipeReader, mut log: CappedLog, console: Option<&str>) {
    let mut buf = [0u8; 8192];
    let mut pending = Vec::new();
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        // A full disk must not stop the container: the log is best effort.
        let _ = log.write(&buf[..n]);
        if let Some(prefix) = console {
            pending.extend_from_slice(&buf[..n]);
            while let Some(end) = pending.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = pending.drain(..=end).collect();
                let text = String::from_utf8_lossy(&line[..line.len() - 1]);
                console_line(&format!("{prefix}{text}"));
            }
        }
    }
    if let Some(prefix) = console
        && !pending.is_empty()
    {
        console_line(&format!("{prefix}{}", String::from_utf8_lossy(&pending)));
    }
}

impl Sys for RealSys {
    fn mount(&self, spec: &MountSpec) -> io::Result<()> {
        mount(
            spec.source.as_deref(),
            &spec.target,
            spec.fstype.as_deref(),
            spec.flags,
            spec.data.as_deref(),
        )
        .map_err(errno)
    }

    fn umount(&self, target: &Path, lazy: bool) -> io::Result<()> {
        let flags = if lazy {
            MntFlags::MNT_DETACH
        } else {
            MntFlags::empty()
        };
        umount2(target, flags).map_err(errno)
    }

    fn mkdir_all(&self, path: &Path, mode: u32) -> io::Result<()> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(mode)
            .create(path)
    }

    fn mknod_char(&self, path: &Path, mode: u32, major: u64, minor: u64) -> io::Result<()> {
        match mknod(
            path,
            SFlag::S_IFCHR,
            Mode::from_bits_truncate(mode),
            makedev(major, minor),
        ) {
            Ok(()) | Err(Errno::EEXIST) => Ok(()),
            Err(e) => Err(errno(e)),
        }
    }

    fn symlink(&self, target: &Path, link: &Path) -> io::Result<()> {
        match symlink(target, link) {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
            other => other,
        }
    }

    fn chdir(&self, dir: &Path) -> io::Result<()> {
        nix::unistd::chdir(dir).map_err(errno)
    }

    fn chroot(&self, dir: &Path) -> io::Result<()> {
        nix::unistd::chroot(dir).map_err(errno)?;
        nix::unistd::chdir("/").map_err(errno)
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        fs::read(path)
    }

    fn read_at(&self, path: &Path, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        use std::os::unix::fs::FileExt;
        let file = File::open(path)?;
        let mut buf = vec![0u8; len];
        let mut got = 0;
        while got < len {
            match file.read_at(&mut buf[got..], offset + got as u64) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        buf.truncate(got);
        Ok(buf)
    }

    fn remove_tree(&self, dir: &Path) -> io::Result<u64> {
        let dev = fs::symlink_metadata(dir)?.dev();
        Ok(remove_below(dir, dev))
    }

    fn write(&self, path: &Path, data: &[u8], atomic: bool) -> io::Result<()> {
        if !atomic {
            return fs::write(path, data);
        }
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        fs::write(&tmp, data)?;
        fs::rename(&tmp, path)
    }

    fn read_dir(&self, path: &Path) -> io::Result<Vec<DirEntry>> {
        let mut entries = Vec::new();
        for entry in fs::read_dir(path)? {
            let entry = entry?;
            let kind = entry.file_type()?;
            let link = if kind.is_symlink() {
                fs::read_link(entry.path()).ok()
            } else {
                None
            };
            entries.push(DirEntry {
                name: entry.file_name().to_string_lossy().into_owned(),
                is_dir: kind.is_dir(),
                link,
            });
        }
        Ok(entries)
    }

    fn names(&self, path: &Path) -> io::Result<Vec<String>> {
        fs::read_dir(path)?
            .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect()
    }

    fn cpus(&self) -> usize {
        // The affinity mask: std's available_parallelism also reads the
        // cgroup files and mountinfo, ~10 ms under emulation, for PID 1
        // which no cgroup limits.
        let Ok(set) = nix::sched::sched_getaffinity(Pid::from_raw(0)) else {
            return 1;
        };
        (0..nix::sched::CpuSet::count())
            .filter(|i| set.is_set(*i).unwrap_or(false))
            .count()
            .max(1)
    }

    fn exists(&self, path: &Path) -> bool {
        fs::symlink_metadata(path).is_ok()
    }

    fn root_fstype(&self) -> io::Result<String> {
        let st = nix::sys::statfs::statfs("/").map_err(errno)?;
        let magic = st.filesystem_type();
        // RAMFS_MAGIC: the initramfs when the kernel has no tmpfs rootfs.
        Ok(if magic.0 == 0x8584_58f6 {
            "ramfs".to_owned()
        } else if magic == nix::sys::statfs::TMPFS_MAGIC {
            "tmpfs".to_owned()
        } else {
            format!("{:#x}", magic.0)
        })
    }

    fn copy_tree(&self, from: &Path, to: &Path) -> io::Result<u64> {
        let dev = fs::symlink_metadata(from)?.dev();
        copy_dir(from, to, dev)
    }

    fn lower_priority(&self) {
        // On Linux the nice value belongs to the thread: `PRIO_PROCESS`
        // with 0 is the calling one. Failing leaves it as it was.
        let _ = rustix::process::setpriority_process(None, 19);
    }

    fn load_module(&self, path: &Path, compressed: bool) -> io::Result<()> {
        let file = File::open(path)?;
        let flags = if compressed {
            ModuleInitFlags::from_bits_retain(MODULE_INIT_COMPRESSED_FILE)
        } else {
            ModuleInitFlags::empty()
        };
        let params = CString::default();
        match finit_module(&file, &params, flags) {
            Ok(()) | Err(Errno::EEXIST) => Ok(()),
            Err(e) => Err(errno(e)),
        }
    }

    fn sethostname(&self, name: &str) -> io::Result<()> {
        nix::unistd::sethostname(name).map_err(errno)
    }

    fn set_rlimits(&self, nofile: u64, nproc: Option<u64>) -> io::Result<()> {
        setrlimit(Resource::RLIMIT_NOFILE, nofile, nofile).map_err(errno)?;
        let nproc = nproc.unwrap_or(nix::sys::resource::RLIM_INFINITY);
        setrlimit(Resource::RLIMIT_NPROC, nproc, nproc).map_err(errno)
    }

    fn link(&self, op: &LinkOp) -> io::Result<()> {
        netlink::apply(op)
    }

    fn spawn(&self, cmd: &Cmd) -> io::Result<i32> {
        // An exec failure inside std's spawn would race with the reaper:
        // report a missing program before forking.
        if !cmd.program.exists() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{} not found", cmd.program.display()),
            ));
        }
        let name = cmd
            .program
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let (stdout, stderr) = match &cmd.stdout {
            // One log for both: one pipe, so that one writer keeps the file
            // (and its rotation) and the lines stay in the order written.
            Output::Log { .. } if cmd.stdout == cmd.stderr => {
                let (reader, writer) = io::pipe()?;
                self.log_thread(reader, &cmd.stdout, &name)?;
                (Stdio::from(writer.try_clone()?), Stdio::from(writer))
            }
            _ => (
                self.stdio(&cmd.stdout, &name)?,
                self.stdio(&cmd.stderr, &name)?,
            ),
        };
        let mut command = Command::new(&cmd.program);
        command
            .args(&cmd.args)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr);
        unblock_signals(&mut command);
        let child = command.spawn()?;
        // The reaper collects the status; the Child handle is not waited on.
        let pid = child.id() as i32;
        drop(child);
        Ok(pid)
    }

    fn wait(&self, pid: i32) -> io::Result<Exit> {
        Ok(self.reaper.wait(pid))
    }

    fn wait_timeout(&self, pid: i32, timeout: Duration) -> io::Result<Option<Exit>> {
        let deadline = boottime_ms().saturating_add(timeout.as_millis() as u64);
        Ok(self.reaper.wait_until(pid, deadline))
    }

    fn alive(&self, pid: i32) -> bool {
        !self.reaper.reaped(pid) && kill(Pid::from_raw(pid), None).is_ok()
    }

    fn kill(&self, pid: i32, signal: i32) -> io::Result<()> {
        let signal = Signal::try_from(signal).map_err(errno)?;
        match kill(Pid::from_raw(pid), signal) {
            Ok(()) | Err(Errno::ESRCH) => Ok(()),
            Err(e) => Err(errno(e)),
        }
    }

    fn now_ms(&self) -> u64 {
        boottime_ms()
    }

    fn sleep(&self, duration: Duration) {
        std::thread::sleep(duration);
    }

    fn sync(&self) {
        nix::unistd::sync();
    }

    fn power(&self, action: PowerAction) -> io::Error {
        let mode = match action {
            PowerAction::Poweroff => RebootMode::RB_POWER_OFF,
            PowerAction::Reboot => RebootMode::RB_AUTOBOOT,
            PowerAction::Halt => RebootMode::RB_HALT_SYSTEM,
        };
        match reboot(mode) {
            Err(e) => errno(e),
            Ok(never) => match never {},
        }
    }

    fn console(&self, line: &str) {
        console_line(line);
    }
}

/// Copy a directory tree within one filesystem, keeping modes, owners and mtimes.
fn copy_dir(from: &Path, to: &Path, dev: u64) -> io::Result<u64> {
    let mut count = 0;
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        let src = entry.path();
        let dst = to.join(entry.file_name());
        let meta = fs::symlink_metadata(&src)?;
        if meta.dev() != dev {
            continue;
        }
        let kind = meta.file_type();
        if kind.is_dir() {
            if src == to {
                continue;
            }
            fs::create_dir_all(&dst)?;
            count += copy_dir(&src, &dst, dev)?;
        } else if kind.is_symlink() {
            symlink(fs::read_link(&src)?, &dst)?;
        } else if kind.is_file() {
            fs::copy(&src, &dst)?;
        } else {
            let sflag = SFlag::from_bits_truncate(meta.mode() & SFlag::S_IFMT.bits());
            mknod(
                &dst,
                sflag,
                Mode::from_bits_truncate(meta.mode()),
                meta.rdev(),
            )
            .map_err(errno)?;
        }
        nix::unistd::fchownat(
            nix::fcntl::AT_FDCWD,
            &dst,
            Some(nix::unistd::Uid::from_raw(meta.uid())),
            Some(nix::unistd::Gid::from_raw(meta.gid())),
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .map_err(errno)?;
        if !kind.is_symlink() {
            fs::set_permissions(&dst, fs::Permissions::from_mode(meta.mode() & 0o7777))?;
        }
        count += 1;
    }
    Ok(count)
}

/// Remove what is below `dir` on device `dev`, best effort: an entry that
/// cannot go stays (it only costs memory). Mountpoints, on another device,
/// are left with what is mounted on them.
fn remove_below(dir: &Path, dev: u64) -> u64 {
    let Ok(entries) = fs::read_dir(dir) else {
        return 0;
    };
    let mut count = 0;
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(meta) = fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.dev() != dev {
            continue;
        }
        if meta.is_dir() {
            count += remove_below(&path, dev);
            if fs::remove_dir(&path).is_ok() {
                count += 1;
            }
        } else if fs::remove_file(&path).is_ok() {
            count += 1;
        }
    }
    count
}
