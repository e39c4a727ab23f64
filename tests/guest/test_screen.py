"""The installed QEMU's screen through a real VNC client (issue 16).

test_screen_vnc boots the test bed on the QEMU that make install installed
(test_install.installed(): build/test-install/BASE) with a composed SR-IOV
device (one virtio-net PF, three VFs, each on its own slirp network), a
virtio-vga and -vnc on 127.0.0.1, under TCG (or KVM with ACCEL=kvm).  The
guest checks the PF, enables the three VFs and pings through each; then it
clears its VGA console (/dev/tty0: the kernel's console stays on ttyS0,
where the harness reads the CHECK lines) and asks the host for a
screenshot, the blank one; then it writes a line with a token that the
host chose at random, the PF's sriov_numvfs and one line per enabled VF to
/dev/tty0 and asks for the second screenshot.  The host takes both with
Debian's vncsnapshot (a VNC client) and reads them with tesseract-ocr: the
second must show the token and "three" and "enabled" (the PF's
sriov_numvfs, in words: "PF ...: three VFs enabled"), the blank one none,
and the two pictures must differ.  The screenshots (JPEG) and what OCR
read stay in build/test-logs/BASE/screen-vnc-{blank,text}.{jpg,txt}.

Without vncsnapshot or tesseract (scripts/test-deps.sh installs them) the
test is skipped, saying which is missing.
"""

import os
import random
import shutil
import subprocess

import interactive
from guestlib import Skip
from test_install import installed
from test_sriov import compose, Scenario
from testenv import BASE, LOGS, TIMEOUT_SCALE

LAYOUT = [(0, [1, 2, 3])]
# The offset of the PF's SR-IOV extended capability in config space, with
# the PF's default properties, in each series
SRIOV_CAP = {'10.0': '0x100', '10.2': '0x100'}
# Words that OCR reads reliably in the VGA font (no 0/O, 1/l/I pairs)
WORDS = ('harbor', 'canyon', 'meadow', 'copper', 'lantern', 'orchard',
         'summit', 'falcon', 'glacier', 'thunder', 'willow', 'pepper',
         'marble', 'garden', 'rocket', 'sparrow')
TOOLS = {'vncsnapshot': 'vncsnapshot', 'tesseract': 'tesseract-ocr'}


def SHOWN(tok):  # pylint: disable=invalid-name
    """What OCR must read on the screen (and not on the blank one): the
    token, and the PF's sriov_numvfs (3) as the guest wrote it, in words."""
    return [tok, 'three', 'enabled']


def need_tools():
    missing = [f'{t} (Debian package {p})' for t, p in TOOLS.items()
               if not shutil.which(t)]
    if missing:
        raise Skip(f'not installed: {", ".join(missing)} '
                   '(scripts/test-deps.sh installs them)')


def token():
    """Two different words, chosen anew for every run from the system's
    entropy (whatever another test module does with random's seed)."""
    return ' '.join(random.SystemRandom().sample(WORDS, 2))


def snapshot(log, port, path, blank=False):
    """A screenshot of the VNC server on 127.0.0.1:PORT into PATH (JPEG)
    with vncsnapshot; (ok, detail).  BLANK: a screen with nothing on it is
    what we want (vncsnapshot waits for a non-blank one otherwise)."""
    if os.path.exists(path):
        os.unlink(path)
    cmd = ['vncsnapshot', '-quiet', '-nojpeg', '-quality', '100',
           *(['-allowblank'] if blank else []),
           f'127.0.0.1:{port - 5900}', path]
    try:
        p = subprocess.run(cmd, capture_output=True, text=True,
                           errors='replace', check=False,
                           timeout=60 * TIMEOUT_SCALE)
        rc, out = p.returncode, p.stdout + p.stderr
    except subprocess.TimeoutExpired:
        rc, out = None, 'timeout'
    log(f'$ {" ".join(cmd)}\nrc={rc}\n{out}')
    ok = rc == 0 and os.path.isfile(path) and os.path.getsize(path) > 0
    return ok, f'rc={rc} {out.strip()}'


def ocr(log, path):
    """The text tesseract reads in the picture at PATH (also written next
    to it as .txt)."""
    cmd = ['tesseract', path, 'stdout', '--psm', '6']
    p = subprocess.run(cmd, capture_output=True, text=True, errors='replace',
                       check=False, timeout=120)
    log(f'$ {" ".join(cmd)}\nrc={p.returncode}\n{p.stdout}{p.stderr}')
    with open(os.path.splitext(path)[0] + '.txt', 'w',
              encoding='utf-8') as f:
        f.write(p.stdout)
    return p.stdout


def norm(text):
    """Lower case, whitespace runs as one space: OCR's spacing varies."""
    return ' '.join(text.lower().split())


def same_file(a, b):
    with open(a, 'rb') as fa, open(b, 'rb') as fb:
        return fa.read() == fb.read()


def check_screens(check, log, blank, text, words):
    """The checks (CHECK(name, ok, detail)) of a blank and a text screenshot
    (paths) and what OCR read in them; WORDS must be in the text one and
    not in the blank one.  LOG(text) logs the commands."""
    check('screenshots-differ', not same_file(blank, text),
          f'{blank} {text}')
    read_text = norm(ocr(log, text))
    read_blank = norm(ocr(log, blank))
    for w in words:
        check(f'ocr-text-shows-{w.replace(" ", "-")}', w in read_text,
              repr(read_text[:300]))
        check(f'ocr-blank-lacks-{w.replace(" ", "-")}', w not in read_blank,
              repr(read_blank[:300]))


# The guest's side: its VGA console is /dev/tty0; ttyS0 stays the console
# of the kernel and of the scenario.
SCREEN_SH = r'''
screen_clear() { printf '\033[2J\033[H' > /dev/tty0; }
screen_show() {
    local pf=$1 tok=$2 vf n
    screen_clear
    n=$(cat $B/$pf/sriov_numvfs)
    # in words, which OCR reads more reliably than "sriov_numvfs 3"
    case $n in 0) n=zero;; 1) n=one;; 2) n=two;; 3) n=three;; 4) n=four;; esac
    {
        echo "qemu-sriov screen test: $tok"
        echo "PF $pf: $n VFs enabled"
        for vf in $B/$pf/virtfn*; do
            vf=$(basename "$(readlink $vf)")
            echo "VF $vf $(ls $B/$vf/virtio*/net 2>/dev/null)"
        done
    } > /dev/tty0
}
check vga-console-exists [ -c /dev/tty0 ]
# Where a driver finds the PF's SR-IOV capability (ID 0x0010): walk the
# PF's extended capabilities from 0x100; its offset is a RESULT, and
# must be SRIOV_CAP[BASE], what README.md tells driver developers
sriov_cap_offset() {
    local off=256 hdr n=0
    while [ $off -ge 256 ] && [ $n -lt 64 ]; do
        hdr=$(od -An -tx4 -j$off -N4 $B/$1/config | tr -d ' ')
        [ -n "$hdr" ] || return
        if [ $((0x$hdr & 0xffff)) -eq 16 ]; then
            printf '0x%x\n' $off
            return
        fi
        off=$(( (0x$hdr >> 20) & 0xffc ))
        n=$((n + 1))
    done
}
sriov_cap_check() {
    local off
    off=$(sriov_cap_offset $1)
    result sriov-cap-offset "$off"
    expect sriov-cap-offset "$off" $2
    result ext-caps "$(od -An -tx4 -j256 -N4 $B/$1/config)"
}
'''


def screen_steps(pf, tok):
    """The guest's steps of both screen tests (this one and
    test_virtinstall): check the PF and its SR-IOV capability, enable the
    VFs, and have the host take a screenshot of a blank screen, then one
    that shows TOK."""
    s = Scenario([pf])
    s.sh(SCREEN_SH)
    s.pf_check(pf)
    s.sh(f'sriov_cap_check {pf.addr} {SRIOV_CAP[BASE]}')
    s.enable(pf, len(pf.vfs))
    s.sh('screen_clear')
    s.sh('host screenshot blank')
    s.sh(f'screen_show {pf.addr} "{tok}"')
    s.sh('host screenshot text')
    return s


def screen_scenario(pf, tok):
    return screen_steps(pf, tok).text()


def test_screen_vnc():
    _, _, qemu = installed()
    need_tools()
    name = 'screen-vnc'
    tok = token()
    args, (pf,) = compose(LAYOUT)
    args += ['-device', 'virtio-vga', '-display', 'none',
             # displays from 50 on: libvirt's autoport starts at 5900
             '-vnc', '127.0.0.1:50,to=99']
    shots = {k: os.path.join(LOGS, f'{name}-{k}.jpg')
             for k in ('blank', 'text')}

    def handler(session, action, arg):
        if action != 'screenshot':
            raise interactive.HostError(f'unknown action {action}')
        vnc = session.current.cmd('query-vnc')
        port = int(vnc.get('service') or 0)
        session.check(f'vnc-{arg}-enabled', vnc.get('enabled') and port,
                      f'{vnc}')
        ok, detail = snapshot(session.log, port, shots[arg],
                              blank=arg == 'blank')
        session.check(f'vncsnapshot-{arg}', ok, detail)
        if arg == 'text' and ok and os.path.exists(shots['blank']):
            check_screens(session.check, session.log, shots['blank'],
                          shots['text'], SHOWN(tok))
        return None

    res = interactive.boot(name, screen_scenario(pf, tok), handler,
                           args=args, timeout=600, qemu=qemu)
    names = {c[0] for c in res.checks}
    for want in ['host:vncsnapshot-blank', 'host:vncsnapshot-text',
                 f'host:ocr-text-shows-{tok.replace(" ", "-")}',
                 'pf0-numvfs3-vf2-ping']:
        if want not in names:
            res.checks.append((want, False, 'did not run'))
    return res
