//! An in-memory [`Sys`] for unit tests: files and directories in maps, a
//! clock that sleeping advances, scripted exit statuses, and a log of every
//! side effect in order.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use super::{Cmd, DirEntry, Exit, LinkOp, MountSpec, PowerAction, Sys};

#[derive(Default)]
struct State {
    files: BTreeMap<PathBuf, Vec<u8>>,
    dirs: BTreeSet<PathBuf>,
    links: BTreeMap<PathBuf, PathBuf>,
    calls: Vec<String>,
    console: Vec<String>,
    now: u64,
    next_pid: i32,
    spawned: HashMap<i32, Cmd>,
    /// Exit statuses handed out in order to spawned programs, by program file name.
    exits: HashMap<String, VecDeque<Exit>>,
    /// How long each program "runs", by file name.
    runtimes: HashMap<String, u64>,
    /// What a program writes to the file its `--log` option names, in
    /// order of its runs, by file name.
    logs: HashMap<String, VecDeque<String>>,
    fail_mount: BTreeSet<PathBuf>,
    fail_modules: BTreeSet<String>,
    root_fstype: String,
    /// Files that appear once the clock reaches their time (a device the
    /// kernel finds late).
    later: Vec<(u64, PathBuf, Vec<u8>)>,
    /// Programs (by file name) that, once their scripted exits are used up,
    /// run until they are signalled.
    held: BTreeSet<String>,
    /// Processes that were signalled.
    killed: BTreeSet<i32>,
    /// Programs (by file name) that cannot be started.
    unstartable: BTreeSet<String>,
}

/// The fake system.
pub struct FakeSys {
    state: Mutex<State>,
}

impl std::fmt::Debug for FakeSys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FakeSys")
    }
}

impl Default for FakeSys {
    fn default() -> Self {
        FakeSys::new()
    }
}

impl FakeSys {
    /// An empty system with a root directory, at time 1000 ms.
    pub fn new() -> FakeSys {
        let mut state = State {
            now: 1000,
            next_pid: 100,
            root_fstype: "ramfs".into(),
            ..State::default()
        };
        state.dirs.insert(PathBuf::from("/"));
        FakeSys {
            state: Mutex::new(state),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Add a file (and its parent directories).
    pub fn add_file(&self, path: &str, data: &str) {
        let mut s = self.lock();
        let path = PathBuf::from(path);
        add_parents(&mut s, &path);
        s.files.insert(path, data.as_bytes().to_vec());
    }

    /// Add a file (and its parent directories) that appears once the fake
    /// clock reaches `at_ms`.
    pub fn add_file_at(&self, path: &str, data: &[u8], at_ms: u64) {
        self.lock()
            .later
            .push((at_ms, PathBuf::from(path), data.to_vec()));
    }

    /// Add a file with binary contents (and its parent directories).
    pub fn add_bytes(&self, path: &str, data: &[u8]) {
        let mut s = self.lock();
        let path = PathBuf::from(path);
        add_parents(&mut s, &path);
        s.files.insert(path, data.to_vec());
    }

    /// Add a directory (and its parents).
    pub fn add_dir(&self, path: &str) {
        let mut s = self.lock();
        let path = PathBuf::from(path);
        add_parents(&mut s, &path);
        s.dirs.insert(path);
    }

    /// Add a symlink.
    pub fn add_link(&self, path: &str, target: &str) {
        let mut s = self.lock();
        let path = PathBuf::from(path);
        add_parents(&mut s, &path);
        s.links.insert(path, PathBuf::from(target));
    }

    /// Script the exit statuses of a program, by its file name.
    pub fn script_exits(&self, program: &str, exits: &[Exit]) {
        self.lock()
            .exits
            .entry(program.to_owned())
            .or_default()
            .extend(exits.iter().copied());
    }

    /// What the next runs of a program write to the file its `--log`
    /// option names (as runc and crun do), by its file name.
    pub fn script_log(&self, program: &str, text: &str) {
        self.lock()
            .logs
            .entry(program.to_owned())
            .or_default()
            .push_back(text.to_owned());
    }

    /// Make every run of a program take `ms` of the fake clock.
    pub fn script_runtime(&self, program: &str, ms: u64) {
        self.lock().runtimes.insert(program.to_owned(), ms);
    }

    /// Make a program (by file name) run until it is signalled, once its
    /// scripted exit statuses are used up; [`Sys::wait`] blocks (in real
    /// time) until then, and the status is death by that signal.
    pub fn hold(&self, program: &str) {
        self.lock().held.insert(program.to_owned());
    }

    /// Make starting a program (by file name) fail with ENOENT.
    pub fn fail_spawn(&self, program: &str) {
        self.lock().unstartable.insert(program.to_owned());
    }

    /// The command process `pid` was started with.
    pub fn command(&self, pid: i32) -> Option<Cmd> {
        self.lock().spawned.get(&pid).cloned()
    }

    /// Make mounts on `target` fail with EPERM.
    pub fn fail_mount(&self, target: &str) {
        self.lock().fail_mount.insert(PathBuf::from(target));
    }

    /// Make loading a module (by file name) fail with ENOEXEC.
    pub fn fail_module(&self, file: &str) {
        self.lock().fail_modules.insert(file.to_owned());
    }

    /// Set what [`Sys::root_fstype`] reports.
    pub fn set_root_fstype(&self, fstype: &str) {
        self.lock().root_fstype = fstype.to_owned();
    }

    /// Every side effect so far, in order.
    pub fn calls(&self) -> Vec<String> {
        self.lock().calls.clone()
    }

    /// The side effects whose text starts with `prefix`.
    pub fn calls_starting(&self, prefix: &str) -> Vec<String> {
        self.calls()
            .into_iter()
            .filter(|c| c.starts_with(prefix))
            .collect()
    }

    /// Every console line so far.
    pub fn console_lines(&self) -> Vec<String> {
        self.lock().console.clone()
    }

    /// A file's contents.
    pub fn file(&self, path: &str) -> Option<String> {
        self.lock()
            .files
            .get(Path::new(path))
            .map(|d| String::from_utf8_lossy(d).into_owned())
    }

    /// The current fake time.
    pub fn now(&self) -> u64 {
        self.lock().now
    }

    fn call(&self, text: String) {
        self.lock().calls.push(text);
    }
}

/// The file name of the program `pid` runs, or `pid<N>` for a process
/// the fake did not spawn (a container's, from a pid file).
fn program_of(s: &State, pid: i32) -> String {
    s.spawned
        .get(&pid)
        .and_then(|c| c.program.file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| format!("pid{pid}"))
}

fn add_parents(s: &mut State, path: &Path) {
    let mut parent = path.parent();
    while let Some(p) = parent {
        s.dirs.insert(p.to_path_buf());
        parent = p.parent();
    }
}

impl Sys for FakeSys {
    fn mount(&self, spec: &MountSpec) -> io::Result<()> {
        self.call(spec.to_string());
        if self.lock().fail_mount.contains(&spec.target) {
            return Err(io::Error::from_raw_os_error(1));
        }
        Ok(())
    }

    fn umount(&self, target: &Path, lazy: bool) -> io::Result<()> {
        let lazy = if lazy { " lazy" } else { "" };
        self.call(format!("umount {}{lazy}", target.display()));
        Ok(())
    }

    fn mkdir_all(&self, path: &Path, mode: u32) -> io::Result<()> {
        self.call(format!("mkdir {} {mode:o}", path.display()));
        let mut s = self.lock();
        add_parents(&mut s, path);
        s.dirs.insert(path.to_path_buf());
        Ok(())
    }

    fn mknod_char(&self, path: &Path, mode: u32, major: u64, minor: u64) -> io::Result<()> {
        self.call(format!(
            "mknod {} c {major} {minor} {mode:o}",
            path.display()
        ));
        Ok(())
    }

    fn symlink(&self, target: &Path, link: &Path) -> io::Result<()> {
        self.call(format!(
            "symlink {} -> {}",
            link.display(),
            target.display()
        ));
        let mut s = self.lock();
        s.links.insert(link.to_path_buf(), target.to_path_buf());
        Ok(())
    }

    fn chdir(&self, dir: &Path) -> io::Result<()> {
        self.call(format!("chdir {}", dir.display()));
        Ok(())
    }

    fn chroot(&self, dir: &Path) -> io::Result<()> {
        self.call(format!("chroot {}", dir.display()));
        Ok(())
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        self.lock()
            .files
            .get(path)
            .cloned()
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))
    }

    fn read_at(&self, path: &Path, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        let data = self.read(path)?;
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(data.len());
        let end = start.saturating_add(len).min(data.len());
        Ok(data[start..end].to_vec())
    }

    fn remove_tree(&self, dir: &Path) -> io::Result<u64> {
        self.call(format!("remove-tree {}", dir.display()));
        Ok(1)
    }

    fn write(&self, path: &Path, data: &[u8], _atomic: bool) -> io::Result<()> {
        let mut s = self.lock();
        add_parents(&mut s, path);
        s.files.insert(path.to_path_buf(), data.to_vec());
        Ok(())
    }

    fn read_dir(&self, path: &Path) -> io::Result<Vec<DirEntry>> {
        let s = self.lock();
        if !s.dirs.contains(path) {
            return Err(io::Error::from(io::ErrorKind::NotFound));
        }
        let mut out = Vec::new();
        let child = |p: &Path| p.parent() == Some(path);
        let name = |p: &Path| {
            p.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        };
        for dir in s.dirs.iter().filter(|p| child(p)) {
            out.push(DirEntry {
                name: name(dir),
                is_dir: true,
                link: None,
            });
        }
        for file in s.files.keys().filter(|p| child(p)) {
            out.push(DirEntry {
                name: name(file),
                is_dir: false,
                link: None,
            });
        }
        for (link, target) in s.links.iter().filter(|(p, _)| child(p)) {
            out.push(DirEntry {
                name: name(link),
                is_dir: false,
                link: Some(target.clone()),
            });
        }
        out.reverse();
        Ok(out)
    }

    fn exists(&self, path: &Path) -> bool {
        let s = self.lock();
        s.dirs.contains(path) || s.files.contains_key(path) || s.links.contains_key(path)
    }

    fn root_fstype(&self) -> io::Result<String> {
        Ok(self.lock().root_fstype.clone())
    }

    fn copy_tree(&self, from: &Path, to: &Path) -> io::Result<u64> {
        self.call(format!("copy {} -> {}", from.display(), to.display()));
        Ok(1)
    }

    fn lower_priority(&self) {
        self.call("lower_priority".to_owned());
    }

    fn load_module(&self, path: &Path, compressed: bool) -> io::Result<()> {
        let file = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        self.call(format!(
            "finit_module {} flags {}",
            path.display(),
            if compressed { 4 } else { 0 }
        ));
        if self.lock().fail_modules.contains(&file) {
            return Err(io::Error::from_raw_os_error(8));
        }
        Ok(())
    }

    fn sethostname(&self, name: &str) -> io::Result<()> {
        self.call(format!("sethostname {name}"));
        Ok(())
    }

    fn set_rlimits(&self, nofile: u64, nproc: Option<u64>) -> io::Result<()> {
        self.call(format!("rlimits nofile={nofile} nproc={nproc:?}"));
        Ok(())
    }

    fn link(&self, op: &LinkOp) -> io::Result<()> {
        self.call(format!("link {op:?}"));
        Ok(())
    }

    fn spawn(&self, cmd: &Cmd) -> io::Result<i32> {
        self.call(format!("spawn {cmd}"));
        let mut s = self.lock();
        let file = cmd.program.file_name().map(|n| n.to_string_lossy());
        if file.is_some_and(|f| s.unstartable.contains(f.as_ref())) {
            return Err(io::Error::from(io::ErrorKind::NotFound));
        }
        s.next_pid += 1;
        let pid = s.next_pid;
        s.spawned.insert(pid, cmd.clone());
        let program = cmd
            .program
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let log = cmd
            .args
            .iter()
            .position(|a| a == "--log")
            .and_then(|i| cmd.args.get(i + 1));
        if let Some(log) = log
            && let Some(text) = s.logs.get_mut(&program).and_then(VecDeque::pop_front)
        {
            let path = PathBuf::from(log);
            add_parents(&mut s, &path);
            s.files.insert(path, text.into_bytes());
        }
        Ok(pid)
    }

    fn wait(&self, pid: i32) -> io::Result<Exit> {
        let mut s = self.lock();
        let program = program_of(&s, pid);
        let scripted = s.exits.get_mut(&program).and_then(VecDeque::pop_front);
        let exit = match scripted {
            Some(exit) => exit,
            None if s.held.contains(&program) => {
                while !s.killed.contains(&pid) {
                    drop(s);
                    std::thread::sleep(Duration::from_millis(1));
                    s = self.lock();
                }
                Exit::Signal(15)
            }
            None => Exit::Code(0),
        };
        let runtime = s.runtimes.get(&program).copied().unwrap_or(0);
        s.now += runtime;
        s.calls.push(format!("wait {program} -> {exit}"));
        Ok(exit)
    }

    fn wait_timeout(&self, pid: i32, timeout: Duration) -> io::Result<Option<Exit>> {
        let held = {
            let s = self.lock();
            let program = program_of(&s, pid);
            let scripted = s.exits.get(&program).is_some_and(|e| !e.is_empty());
            !scripted && s.held.contains(&program) && !s.killed.contains(&pid)
        };
        if held {
            // Still running when the time is up, on the fake clock.
            let mut s = self.lock();
            s.now += timeout.as_millis() as u64;
            s.calls.push(format!("timeout {}", timeout.as_millis()));
            return Ok(None);
        }
        self.wait(pid).map(Some)
    }

    fn alive(&self, pid: i32) -> bool {
        let s = self.lock();
        s.held.contains(&program_of(&s, pid)) && !s.killed.contains(&pid)
    }

    fn kill(&self, pid: i32, signal: i32) -> io::Result<()> {
        self.call(format!("kill {pid} {signal}"));
        if pid > 0 {
            self.lock().killed.insert(pid);
        }
        Ok(())
    }

    fn now_ms(&self) -> u64 {
        self.lock().now
    }

    fn sleep(&self, duration: Duration) {
        let mut s = self.lock();
        s.now += duration.as_millis() as u64;
        s.calls.push(format!("sleep {}", duration.as_millis()));
        let now = s.now;
        let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut s.later)
            .into_iter()
            .partition(|(at, _, _)| *at <= now);
        s.later = later;
        for (_, path, data) in due {
            add_parents(&mut s, &path);
            s.files.insert(path, data);
        }
    }

    fn sync(&self) {
        self.call("sync".into());
    }

    fn power(&self, action: PowerAction) -> io::Error {
        self.call(format!("power {}", action.as_str()));
        io::Error::other("fake machine does not power off")
    }

    fn console(&self, line: &str) {
        self.lock().console.push(line.to_owned());
    }
}
