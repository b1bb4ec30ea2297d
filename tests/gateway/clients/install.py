"""The independent OCPP chargers the end-to-end tests drive, installed once into
~/.cache/evgrid (EVGRID_KAFKA_CACHE's parent when set): the Java library
eu.chargetime.ocpp:v1_6 from Maven Central (plus a charger compiled with javac) and the npm
package ocpp-rpc. Idempotent, with progress lines; `python -m tests.gateway.clients.install`
(`make ocpp-clients`) does it ahead of the tests."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

JAVA_OCPP_VERSION = "1.1.0"
OCPP_RPC_VERSION = "2.2.1"
HERE = Path(__file__).parent

POM = f"""<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>evgrid</groupId><artifactId>ocpp-java-charger</artifactId><version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>eu.chargetime.ocpp</groupId><artifactId>v1_6</artifactId>
      <version>{JAVA_OCPP_VERSION}</version></dependency>
    <dependency><groupId>org.slf4j</groupId><artifactId>slf4j-nop</artifactId>
      <version>1.7.36</version></dependency>
  </dependencies>
</project>
"""


def say(message: str) -> None:
    print(f"[evgrid ocpp-clients] {message}", file=sys.stderr, flush=True)


def cache_root() -> Path:
    root = os.environ.get("EVGRID_KAFKA_CACHE")
    return Path(root) if root else Path.home() / ".cache" / "evgrid"


def _tool(name: str, hint: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise SystemExit(f"evgrid: `{name}` not found on PATH; {hint}")
    return path


def java_classpath() -> str:
    """Classpath with the v1_6 jars and the compiled JavaCharger; resolved/compiled once."""
    work = cache_root() / f"ocpp-java-{JAVA_OCPP_VERSION}"
    lib, classes = work / "lib", work / "classes"
    source = HERE / "JavaCharger.java"
    digest = hashlib.sha256(source.read_bytes()).hexdigest()[:16]
    marker = classes / f".{digest}"
    if not (work / ".complete").exists():
        mvn = _tool("mvn", "install Maven to fetch eu.chargetime.ocpp:v1_6")
        work.mkdir(parents=True, exist_ok=True)
        (work / "pom.xml").write_text(POM)
        say(f"resolving eu.chargetime.ocpp:v1_6:{JAVA_OCPP_VERSION} from Maven Central ...")
        done = subprocess.run([mvn, "-B", "-q", "-f", str(work / "pom.xml"),
                               "org.apache.maven.plugins:maven-dependency-plugin:3.6.1:"
                               "copy-dependencies", "-DincludeScope=runtime",
                               f"-DoutputDirectory={lib}"], check=False)
        if done.returncode != 0:
            raise SystemExit("evgrid: Maven could not resolve eu.chargetime.ocpp:v1_6; check "
                             "that Maven Central is reachable and retry")
        (work / ".complete").write_text("ok\n")
    jars = ":".join(str(p) for p in sorted(lib.glob("*.jar")))
    if not marker.exists():
        javac = _tool("javac", "install a Java 17 JDK (e.g. openjdk-17-jdk-headless)")
        say("compiling JavaCharger.java ...")
        shutil.rmtree(classes, ignore_errors=True)
        classes.mkdir(parents=True)
        subprocess.run([javac, "-nowarn", "-cp", jars, "-d", str(classes), str(source)],
                       check=True)
        marker.write_text("ok\n")
    return f"{classes}:{jars}"


def node_dir() -> Path:
    """A directory whose node_modules holds ocpp-rpc, installed once with npm."""
    work = cache_root() / f"node-ocpp-rpc-{OCPP_RPC_VERSION}"
    if not (work / "node_modules" / "ocpp-rpc" / "package.json").exists():
        npm = _tool("npm", "install Node.js and npm")
        work.mkdir(parents=True, exist_ok=True)
        say(f"installing npm ocpp-rpc@{OCPP_RPC_VERSION} into {work} ...")
        subprocess.run([npm, "install", "--no-audit", "--no-fund", "--loglevel=error",
                        "--prefix", str(work), f"ocpp-rpc@{OCPP_RPC_VERSION}"], check=True)
    return work


if __name__ == "__main__":
    java_classpath()
    say("Java charger (eu.chargetime.ocpp:v1_6) ready")
    node_dir()
    say("Node charger (ocpp-rpc) ready")
