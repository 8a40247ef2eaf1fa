"""Jars from Maven Central through the machine's Maven, fetched once into a cache folder."""

import shutil
import subprocess
from pathlib import Path

from tideline.errors import StackError


def fetch(artifacts: list[str], dest: Path) -> bool:
    """Copy `group:artifact:version` jars and their runtime dependencies into `dest`.

    Returns False when `dest` is already complete (with these artifacts: a cache from a
    release that wanted fewer is topped up), True when it downloaded now.
    """
    done, wanted = dest / ".complete", "\n".join(artifacts)
    if done.exists() and done.read_text() == wanted:
        return False
    mvn = shutil.which("mvn")
    if mvn is None:
        raise StackError("Maven (mvn) is needed to fetch jars: apt-get install -y maven")
    dependencies = "\n".join(
        f"    <dependency><groupId>{g}</groupId><artifactId>{a}</artifactId>"
        f"<version>{v}</version></dependency>"
        for g, a, v in (coords.split(":") for coords in artifacts)
    )
    pom = dest.parent / f"{dest.name}.pom.xml"
    pom.parent.mkdir(parents=True, exist_ok=True)
    pom.write_text(
        '<project xmlns="http://maven.apache.org/POM/4.0.0">\n'
        "  <modelVersion>4.0.0</modelVersion>\n"
        f"  <groupId>dev.tideline</groupId><artifactId>{dest.name}</artifactId>"
        "<version>0</version><packaging>pom</packaging>\n"
        f"  <dependencies>\n{dependencies}\n  </dependencies>\n</project>\n"
    )
    result = subprocess.run(
        [
            mvn,
            "-q",
            "-B",
            "-f",
            str(pom),
            "dependency:copy-dependencies",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={dest}",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise StackError(f"fetching {', '.join(artifacts)} failed:\n{result.stdout}{result.stderr}")
    done.write_text(wanted)
    return True


def classpath(dest: Path) -> str:
    return f"{dest}/*"
