//! Object-store emulators: moto's S3 server and Azurite's Blob service, each started once
//! per test binary on a free loopback port and stopped with it (the kernel kills them
//! when the thread that started them, which lives as long as the process, goes away).
//! Every test gets buckets or containers of its own. A missing emulator fails the test;
//! `scripts/test.sh` installs both (moto in the Python venv, Azurite with npm).

use std::collections::HashMap;
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use medallion::storage::{Location, StorageOptions};

use crate::interop::python;

/// Azurite's well-known development account (public, documented by Microsoft).
const AZURITE_ACCOUNT: &str = "devstoreaccount1";
const AZURITE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    S3,
    Azure,
}

impl Kind {
    fn scheme(self) -> &'static str {
        match self {
            Kind::S3 => "s3",
            Kind::Azure => "az",
        }
    }
}

/// A running emulator.
pub struct Emulator {
    kind: Kind,
    port: u16,
    /// The credential medallion is given through `${MEDALLION_TEST_SECRET}`: tests grep
    /// every output for it.
    secret: String,
}

pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| tokio::runtime::Runtime::new().unwrap())
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Start `cmd` from a thread that lives as long as the test process; the child gets
/// SIGKILL when that thread (so the process) ends.
fn start_forever(mut cmd: Command, what: &str, port: u16) {
    let log_path = std::env::temp_dir().join(format!("medallion-emulator-{port}.log"));
    let log = std::fs::File::create(&log_path).unwrap();
    cmd.stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log);
    // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    let (tx, rx) = std::sync::mpsc::channel();
    let what_owned = what.to_string();
    std::thread::spawn(move || match cmd.spawn() {
        Ok(mut child) => {
            let _ = tx.send(Ok(()));
            let status = child.wait();
            eprintln!("{what_owned} exited: {status:?}");
            // Keep the thread (and so the death signal's parent) alive.
            loop {
                std::thread::park();
            }
        }
        Err(e) => {
            let _ = tx.send(Err(e.to_string()));
        }
    });
    if let Err(e) = rx.recv().unwrap() {
        panic!("cannot start {what} (install it with scripts/test.sh): {e}");
    }
    let deadline = Instant::now() + Duration::from_secs(90);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "{what} did not listen on port {port}; its log ({}):\n{}",
            log_path.display(),
            std::fs::read_to_string(&log_path).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

impl Emulator {
    pub fn get(kind: Kind) -> &'static Emulator {
        static S3: OnceLock<Emulator> = OnceLock::new();
        static AZURE: OnceLock<Emulator> = OnceLock::new();
        match kind {
            Kind::S3 => S3.get_or_init(Self::start_moto),
            Kind::Azure => AZURE.get_or_init(Self::start_azurite),
        }
    }

    fn start_moto() -> Emulator {
        let port = free_port();
        let bin = python().parent().unwrap().join("moto_server");
        let mut cmd = Command::new(&bin);
        cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()]);
        start_forever(cmd, &format!("moto ({})", bin.display()), port);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        Emulator {
            kind: Kind::S3,
            port,
            secret: format!("medallion-test-secret-{nanos:x}"),
        }
    }

    fn start_azurite() -> Emulator {
        let port = free_port();
        let bin = crate::workdir::installed("MEDALLION_AZURITE", "scripts/setup-emulators.sh");
        let dir = std::env::temp_dir().join(format!("medallion-azurite-{port}"));
        std::fs::create_dir_all(&dir).unwrap();
        let mut cmd = Command::new(&bin);
        cmd.args(["--blobHost", "127.0.0.1", "--blobPort", &port.to_string()])
            .args(["--inMemoryPersistence", "--silent", "--disableTelemetry"])
            // The Azure SDKs (Python's, for creating containers) send newer API versions.
            .arg("--skipApiVersionCheck")
            .current_dir(&dir);
        start_forever(cmd, &format!("azurite ({})", bin.display()), port);
        Emulator {
            kind: Kind::Azure,
            port,
            secret: AZURITE_KEY.to_string(),
        }
    }

    pub fn secret(&self) -> &str {
        &self.secret
    }

    /// The store options, with the secret's value (for the tests' own client).
    pub fn options(&self) -> Vec<(String, String)> {
        let o = |k: &str, v: &str| (k.to_string(), v.to_string());
        match self.kind {
            Kind::S3 => vec![
                o(
                    "aws_endpoint_url",
                    &format!("http://127.0.0.1:{}", self.port),
                ),
                o("aws_allow_http", "true"),
                o("aws_region", "us-east-1"),
                o("aws_access_key_id", "medallion-test"),
                o("aws_secret_access_key", &self.secret),
            ],
            Kind::Azure => vec![
                o("azure_storage_account_name", AZURITE_ACCOUNT),
                o("azure_storage_account_key", &self.secret),
                o(
                    "azure_storage_endpoint",
                    &format!("http://127.0.0.1:{}/{AZURITE_ACCOUNT}", self.port),
                ),
                o("azure_allow_http", "true"),
            ],
        }
    }

    /// The options as YAML lines at `indent`, the secret as `${MEDALLION_TEST_SECRET}`.
    pub fn options_yaml(&self, indent: &str) -> String {
        self.options()
            .into_iter()
            .map(|(k, v)| {
                let v = if v == self.secret {
                    "${MEDALLION_TEST_SECRET}".to_string()
                } else {
                    v
                };
                format!("{indent}{k}: \"{v}\"\n")
            })
            .collect()
    }

    /// A new, empty bucket or container.
    pub fn new_bucket(&self, hint: &str) -> String {
        static N: Mutex<u32> = Mutex::new(0);
        let n = {
            let mut n = N.lock().unwrap();
            *n += 1;
            *n
        };
        let name = format!("{hint}-{}-{n}", std::process::id());
        let script = match self.kind {
            Kind::S3 => format!(
                "import boto3\nboto3.client('s3', endpoint_url='http://127.0.0.1:{}', aws_access_key_id='x', \
                 aws_secret_access_key='x', region_name='us-east-1').create_bucket(Bucket='{name}')",
                self.port
            ),
            Kind::Azure => format!(
                "from azure.storage.blob import BlobServiceClient\n\
                 BlobServiceClient.from_connection_string('DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};\
                 AccountKey={AZURITE_KEY};BlobEndpoint=http://127.0.0.1:{}/{AZURITE_ACCOUNT};').create_container('{name}')",
                self.port
            ),
        };
        let out = Command::new(python())
            .args(["-c", &script])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "create {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        name
    }

    /// `s3://bucket/prefix/` or `az://container/prefix/`.
    pub fn uri(&self, bucket: &str, prefix: &str) -> String {
        format!("{}://{bucket}/{prefix}", self.kind.scheme())
    }

    pub fn location(&self, bucket: &str, prefix: &str) -> Location {
        let url = url::Url::parse(&format!(
            "{}/",
            self.uri(bucket, prefix).trim_end_matches('/')
        ))
        .unwrap();
        Location::new(
            url,
            StorageOptions::new(self.options().into_iter().collect::<HashMap<_, _>>()),
        )
    }
}
