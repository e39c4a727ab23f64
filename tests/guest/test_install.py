"""make install (issue 16): the installed QEMU, not the one in the build
tree.

installed() runs scripts/install.sh (what make install runs) on the build
under test (OBJ) into a DESTDIR of its own, build/test-install/BASE, once
per run; the screen tests (test_screen.py, test_virtinstall.py) run the
QEMU installed there.  Only the full build (scripts/build.sh, PROFILE=full:
build/qemu-BASE/build) installs; against another one (make check-asan's
test build) these tests are skipped, saying so.

test_install_tree checks what a user gets:
- the installed qemu-system-x86_64 lists gtk, sdl, spice-app and curses
  under -display help (they are modules: it loads them from the installed
  tree) and runs a VNC server with -display vnc=... (VNC is not a display
  type of QEMU's, -display help never lists it), pipewire, pa and alsa under
  -audiodev help, usb-redir, qemu-xhci, usb-tablet and virtio-vga under
  -device help;
- it starts a q35 machine with virtio-vga, a virtio-net NIC and
  usb-tablet/usb-redir without -L, so it finds the BIOS, the VGA BIOS and
  the NIC's option ROM in Debian's firmware packages by itself; -L help
  names no directory of the build tree, and no installed file refers to
  the build tree (RPATH/RUNPATH of every ELF file, the text files);
- qemu-img and the other tools, the keymaps and the man pages are there;
- the manifest lists exactly the installed files, none of which belongs
  to a Debian package (an install without DESTDIR replaces no file of
  Debian's QEMU; a Debian qemu-system-x86_64, if installed, still runs);
- uninstall, into a DESTDIR that holds a file and directories of its own
  before the install, removes exactly what install added.
The output of every command goes to build/test-logs/BASE/install-tree.log.
"""

import functools
import os
import re
import shutil
import subprocess
import tempfile

from guestlib import Skip, GuestResult
from testenv import TOP, BUILD, BASE, OBJ, LOGS, SANITIZER_LOGS

INSTALL = os.path.join(TOP, 'scripts', 'install.sh')
DESTDIR = os.path.join(BUILD, 'test-install', BASE)
NAME = 'install-tree'


def configured_prefix():
    """The PREFIX that OBJ is configured for; Skip if OBJ is not a full
    build."""
    stamp = os.path.join(OBJ, 'qemu-sriov-configure.opts')
    try:
        with open(stamp, encoding='utf-8') as f:
            opts = f.read()
    except OSError:
        raise Skip(f'{OBJ} was not configured by scripts/build.sh') from None
    m = re.search(r"'--prefix=([^']*)'", opts)
    if "'--enable-tools'" not in opts or not m:
        raise Skip(f'{OBJ} is a test build (scripts/build.sh PROFILE=test), '
                   'not the full build that make install installs')
    return m.group(1)


@functools.lru_cache(maxsize=None)
def _install():
    """(destdir, prefix, install.sh output) or the Skip/error text."""
    if SANITIZER_LOGS:
        return ('skip', 'make check-asan builds no installable QEMU '
                '(build-asan is a test build)')
    try:
        prefix = configured_prefix()
    except Skip as e:
        return ('skip', str(e))
    p = subprocess.run([INSTALL, 'install'], capture_output=True, text=True,
                       errors='replace', check=False, timeout=900,
                       env=dict(os.environ, DESTDIR=DESTDIR, PREFIX=prefix,
                                OBJ=OBJ, BASE=BASE))
    out = f'$ DESTDIR={DESTDIR} PREFIX={prefix} {INSTALL} install\n' \
          f'rc={p.returncode}\n{p.stdout}{p.stderr}'
    if p.returncode != 0:
        return ('error', out)
    return (DESTDIR, prefix, out)


def installed():
    """(destdir, prefix, path of the installed qemu-system-x86_64):
    make install's result for the build under test.  Skip where there is
    none to install; AssertionError if install fails."""
    r = _install()
    if r[0] == 'skip':
        raise Skip(r[1])
    if r[0] == 'error':
        raise AssertionError(f'scripts/install.sh failed:\n{r[1]}')
    destdir, prefix, _ = r
    return destdir, prefix, os.path.join(destdir + prefix, 'bin',
                                         'qemu-system-x86_64')


class Log:
    """Checks and the output of the commands, in LOGS/NAME.log."""

    def __init__(self, name):
        self.name = name
        os.makedirs(LOGS, exist_ok=True)
        self.path = os.path.join(LOGS, f'{name}.log')
        self.f = open(self.path, 'w', encoding='utf-8')
        self.checks = []

    def write(self, text):
        self.f.write(text.rstrip('\n') + '\n')
        self.f.flush()

    def check(self, name, ok, detail=''):
        self.checks.append((name, bool(ok), detail))
        self.write(f'CHECK {name} {"PASS" if ok else "FAIL"} {detail}')
        return bool(ok)

    def run(self, cmd, timeout=120, **kw):
        """Run CMD; (rc, stdout+stderr); everything logged."""
        try:
            p = subprocess.run(cmd, capture_output=True, text=True,
                               errors='replace', check=False,
                               timeout=timeout, **kw)
            rc, out = p.returncode, p.stdout + p.stderr
        except subprocess.TimeoutExpired as e:
            rc, out = None, f'{e}'
        except OSError as e:
            rc, out = None, f'{e}'
        self.write(f'$ {" ".join(cmd)}\nrc={rc}\n{out}')
        return rc, out

    def result(self, error=None):
        self.f.close()
        return GuestResult(self.name, self.path, 0, self.checks, {}, error)


def listed(out, names):
    """Which of NAMES are missing from a help listing (first word of each
    line, or a name in quotes: -device help's "name")."""
    words = set()
    for line in out.splitlines():
        m = re.match(r'\s*name "([^"]+)"', line)
        if m:
            words.add(m.group(1))
        elif line.strip():
            words.add(line.split()[0])
    return [n for n in names if n not in words]


def elf_files(root):
    for d, _, files in os.walk(root):
        for fn in files:
            p = os.path.join(d, fn)
            if os.path.islink(p) or not os.path.isfile(p):
                continue
            with open(p, 'rb') as f:
                if f.read(4) == b'\x7fELF':
                    yield p


def test_install_tree():
    destdir, prefix, qemu = installed()
    log = Log(NAME)
    log.write(_install()[2])
    root = destdir + prefix
    build_tree = os.path.realpath(OBJ)
    # Nothing from the build tree's environment helps it
    env = {k: v for k, v in os.environ.items()
           if not k.startswith('QEMU')}

    def help_of(opt, want):
        rc, out = log.run([qemu, opt, 'help'], env=env)
        missing = listed(out, want)
        log.check(f'{opt[1:]}-help', rc == 0 and not missing,
                  f'rc={rc}, missing {missing}' if missing or rc
                  else ' '.join(want))

    help_of('-display', ['gtk', 'sdl', 'spice-app', 'curses'])
    # VNC is no DisplayType in QEMU, so -display help never lists it (nor
    # does Debian's QEMU's); -display vnc=... is parsed on its own: it
    # must give a VNC server
    sock = os.path.join(tempfile.mkdtemp(prefix='vnc-'), 'vnc.sock')
    rc, out = log.run(
        [qemu, '-machine', 'none', '-nodefaults', '-display',
         f'vnc=unix:{sock}', '-S', '-qmp', 'stdio'],
        input='{"execute": "qmp_capabilities"}\n'
              '{"execute": "query-vnc"}\n{"execute": "quit"}\n',
        env=env, timeout=60)
    shutil.rmtree(os.path.dirname(sock), ignore_errors=True)
    log.check('display-vnc', rc == 0 and '"enabled": true' in out and
              sock in out, f'rc={rc}')
    help_of('-audiodev', ['pipewire', 'pa', 'alsa'])
    help_of('-device', ['usb-redir', 'qemu-xhci', 'usb-tablet', 'virtio-vga'])

    # Modules from the installed tree, not from the build tree
    moddirs = [d for d, _, files in os.walk(root)
               if any(f.startswith('ui-gtk') for f in files)]
    log.check('modules-installed', len(moddirs) == 1 and
              os.path.realpath(moddirs[0]).startswith(
                  os.path.realpath(root)), f'{moddirs}')

    # Firmware and option ROMs from Debian's packages, without -L
    rc, out = log.run(
        [qemu, '-machine', 'q35', '-accel', 'tcg', '-nodefaults',
         '-display', 'none', '-S', '-qmp', 'stdio',
         '-device', 'virtio-vga', '-netdev', 'user,id=n0',
         '-device', 'virtio-net-pci,netdev=n0', '-device', 'qemu-xhci',
         '-device', 'usb-tablet', '-chardev', 'null,id=r0',
         '-device', 'usb-redir,chardev=r0'],
        input='{"execute": "qmp_capabilities"}\n{"execute": "quit"}\n',
        env=env, timeout=60)
    log.check('starts-with-debian-firmware',
              rc == 0 and '"return"' in out and 'could not' not in out
              and 'romfile' not in out, f'rc={rc}')
    rc, out = log.run([qemu, '-L', 'help'], env=env)
    dirs = [ln.strip() for ln in out.splitlines() if ln.startswith('/')]
    log.check('data-dirs', rc == 0 and dirs and
              not any(d.startswith(build_tree) or '/qemu-bundle' in d
                      for d in dirs) and
              '/usr/share/seabios' in dirs and '/usr/lib/ipxe/qemu' in dirs,
              f'{dirs}')
    # RPATH/RUNPATH and the text files
    bad = []
    for p in elf_files(root):
        out = subprocess.run(['readelf', '-d', p], capture_output=True,
                             text=True, check=False).stdout
        for line in out.splitlines():
            if ('RPATH' in line or 'RUNPATH' in line) and \
                    (TOP in line or '$ORIGIN' in line):
                bad.append(f'{p}: {line.strip()}')
    rc, out = log.run(['grep', '-rIl', '--', TOP, root])
    bad += [f'{p}: names {TOP}' for p in out.split()] if rc == 0 else []
    log.check('no-build-tree-references', not bad, '; '.join(bad[:10]))

    # Tools, keymaps, man pages
    for tool in ('qemu-img', 'qemu-io', 'qemu-nbd', 'qemu-storage-daemon'):
        rc, out = log.run([os.path.join(root, 'bin', tool), '--version'],
                          env=env)
        log.check(f'tool-{tool}', rc == 0 and 'qemu-sriov' in out,
                  out.splitlines()[0] if out else f'rc={rc}')
    rc, out = log.run([qemu, '--version'], env=env)
    log.check('version', rc == 0 and f'qemu-sriov {BASE} series' in out,
              out.splitlines()[0] if out else f'rc={rc}')
    for rel in ('share/qemu/keymaps/en-us', 'share/man/man1/qemu.1',
                'share/man/man1/qemu-img.1', 'share/man/man8/qemu-nbd.8'):
        log.check(f'file-{rel}', os.path.isfile(os.path.join(root, rel)))

    # The manifest: exactly the installed files, none of Debian's
    manifest = os.path.join(root, 'share', 'qemu-sriov', 'manifest')
    with open(manifest, encoding='utf-8') as f:
        entries = [ln.split(' ', 1) for ln in f.read().splitlines()]
    mfiles = sorted(p for k, p in entries if k == 'f')
    tree = sorted(os.path.join(d, fn)[len(destdir):]
                  for d, _, files in os.walk(destdir) for fn in files)
    tree += sorted(os.path.join(d, x)[len(destdir):]
                   for d, dirs, _ in os.walk(destdir) for x in dirs
                   if os.path.islink(os.path.join(d, x)))
    log.check('manifest-is-the-tree', sorted(tree) == mfiles,
              f'{len(mfiles)} files' if sorted(tree) == mfiles else
              f'only in tree: {sorted(set(tree) - set(mfiles))[:5]}, only '
              f'in manifest: {sorted(set(mfiles) - set(tree))[:5]}')
    p = subprocess.run(['dpkg-query', '-S', *mfiles], capture_output=True,
                       text=True, check=False)
    owned = [ln for ln in p.stdout.splitlines() if ': ' in ln]
    log.check('no-file-of-a-debian-package', not owned, '; '.join(owned[:5]))
    debian_qemu = '/usr/bin/qemu-system-x86_64'
    if os.path.exists(debian_qemu):
        rc, out = log.run([debian_qemu, '--version'])
        log.check('debian-qemu-still-runs', rc == 0 and 'Debian' in out,
                  out.splitlines()[0] if out else f'rc={rc}')

    # Uninstall removes what install added, and only that
    tmp = tempfile.mkdtemp(prefix='uninstall-', dir=os.path.dirname(destdir))
    try:
        ours = os.path.join(tmp + prefix, 'bin', 'not-qemu')
        os.makedirs(os.path.dirname(ours))
        with open(ours, 'w', encoding='utf-8') as f:
            f.write('a file that was there before\n')
        before = sorted(os.path.join(d, x) for d, ds, fs in os.walk(tmp)
                        for x in ds + fs)
        ienv = dict(os.environ, DESTDIR=tmp, PREFIX=prefix, OBJ=OBJ,
                    BASE=BASE)
        rc1, _ = log.run([INSTALL, 'install'], env=ienv, timeout=900)
        n = sum(len(fs) for _, _, fs in os.walk(tmp))
        rc2, _ = log.run([INSTALL, 'uninstall'], env=ienv, timeout=300)
        after = sorted(os.path.join(d, x) for d, ds, fs in os.walk(tmp)
                       for x in ds + fs)
        log.check('uninstall-removes-exactly-the-install',
                  rc1 == 0 and rc2 == 0 and n > 50 and after == before,
                  f'{n} files installed; left: '
                  f'{sorted(set(after) - set(before))[:5]}, gone: '
                  f'{sorted(set(before) - set(after))[:5]}')
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return log.result()
