#!/usr/bin/env python3
"""Write the seed corpora of tests/fuzz/ (tests/fuzz/corpus/<name>/).

Each seed is a small valid input in its harness's format (see the comment
at the top of each fuzz_*.c).  Run from anywhere; existing seeds of the
same name are overwritten, other files (corpus growth you chose to keep)
are left alone.
"""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def write(name, seed, data):
    d = os.path.join(HERE, "corpus", name)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, seed), "wb") as f:
        f.write(data)


# ---- fuzz_chr_spec: one --chardev SPEC ---------------------------------

SPECS = {
    "socket-unix-server": "socket,id=a,path=/x,server=on",
    "socket-tcp-telnet": "socket,id=mon0,host=127.0.0.1,port=4444,"
    "server=on,wait=off,telnet=on,nodelay",
    "socket-reconnect": "socket,id=s,path=/tmp/s,reconnect-ms=1000",
    "file-append": "file,id=f,path=/var/log/x,append=on,input-path=/in",
    "log-rotate": "log,id=l,path=/tmp/l,max-size=1M,max-backups=3",
    "ringbuf": "ringbuf,id=r,size=64K",
    "pty-link": "pty,id=p,link=/tmp/pty",
    "pipe": "pipe,id=p2,path=/tmp/fifo",
    "null": "null,id=n",
    "fd": "fd,id=fd0,in=3,out=4",
    "stdio-logfile": "stdio,id=io,logfile=/tmp/log,logappend=on",
    "escaped-comma": "socket,id=x,path=a,,b,,,,c,server",
    "bad-trailing-comma": "socket,id=a,",
    "bad-id": "file,id=9x,path=/x",
    # Past CHR_SPEC_MAX_LEN (4096): also lets libFuzzer's -max_len grow.
    "too-long": "file,id=a,path=/" + "x" * 4200,
}
for k, v in SPECS.items():
    write("chr_spec", k, v)

# ---- fuzz_options: arguments separated by NUL --------------------------

ARGS = {
    "minimal": ["--socket", "/tmp/vp.sock", "/mnt/vm"],
    "ports": ["--socket", "s", "--port", "name=org.qemu.guest_agent.0",
              "--port", "name=console0,console=on,nr=0",
              "--port", "name=b,nr=126,ring-size=1M", "-o",
              "session,exclusive,allow_other,default_permissions,"
              "uid=1000,gid=100,mode=0644", "--max-ports", "127", "/mnt"],
    "fd-syslog": ["--fd", "3", "--log-level", "debug", "--syslog", "/mnt"],
    "chardev": ["--socket=s", "--chardev", "socket,id=a,path=/x,server=on",
                "--port", "name=a,chardev=a,ring-size=64K", "/mnt"],
    "help": ["--help"],
    "version": ["-V"],
    "caps": ["--print-capabilities"],
    "short-group": ["-ho", "session", "/mnt"],
    "missing-arg": ["--socket", "s", "/mnt", "-o"],
    "escaped-name": ["--socket", "s", "--port", "name=a,,b,console=on",
                     "/mnt"],
    "ports-over-max": ["--socket", "s", "--max-ports", "1", "--port",
                       "name=a", "--port", "name=b", "/mnt"],
    "flag-with-value": ["--syslog=1", "--socket", "s", "/mnt"],
}
for k, v in ARGS.items():
    write("options", k, "\0".join(v))

# ---- fuzz_virtqueue: header, [addresses], desc table, avail ring, R3 ----

R0, R1, R2, R3 = 0x10000, 0x14000, 0x40000, 0x80000
F_NEXT, F_WRITE, F_INDIRECT = 1, 2, 4


def desc(addr, length, flags=0, nxt=0):
    return struct.pack("<QIHH", addr, length, flags, nxt)


def vq_seed(log2num, descs, heads, features=0, base=0, policy=0,
            late_idx=0, used_event=0, r3=b"", addrs=None, avail_flags=0):
    num = 1 << log2num
    cfg = log2num | features | (0x80 if addrs else 0)
    out = struct.pack("<BHBHH", cfg, base, policy, late_idx, used_event)
    if addrs:
        out += struct.pack("<IIIH", *addrs, num)
    table = b"".join(descs).ljust(16 * num, b"\0")
    ring = [0] * num
    for i, h in enumerate(heads):
        ring[(base + i) % num] = h
    avail = struct.pack("<HH", avail_flags, (base + len(heads)) & 0xffff)
    avail += struct.pack("<%dH" % num, *ring) + struct.pack("<H", 0)
    return out + table + avail + r3


EVENT_IDX, INDIRECT, HOLD = 0x10, 0x20, 0x40

write("virtqueue", "chain-and-single", vq_seed(
    3, [desc(R2, 64, F_NEXT, 1), desc(R2 + 0x100, 128, F_WRITE),
        desc(R2 + 0x200, 32)], [0, 2], late_idx=2))
write("virtqueue", "indirect-event-idx", vq_seed(
    3, [desc(R3, 48, F_INDIRECT)], [0], features=EVENT_IDX | INDIRECT,
    late_idx=1, used_event=0,
    r3=desc(R2, 16, F_NEXT, 1) + desc(R2 + 0x10, 16, F_NEXT, 2) +
    desc(R2 + 0x100, 64, F_WRITE)))
write("virtqueue", "cross-region-hold", vq_seed(
    3, [desc(R0 + 0x3000, 0x2000), desc(R2, 0x100, F_WRITE),
        desc(R2 + 0x100, 0x100, F_WRITE)], [0, 1, 2],
    features=HOLD | EVENT_IDX, policy=0x06, late_idx=3))
write("virtqueue", "unpop", vq_seed(
    3, [desc(R2, 0x10), desc(R2 + 0x10, 0x10, F_WRITE),
        desc(R1, 0x20, F_NEXT, 3), desc(R2 + 0x40, 0x20, F_WRITE)],
    [0, 1, 2], policy=0x01, late_idx=3))
write("virtqueue", "full-ring-wraps", vq_seed(
    8, [desc(R2 + (i % 16) * 0x100, 0x100, F_WRITE) for i in range(256)],
    list(range(256)), base=0xfff0, late_idx=0xfff0, policy=0x02))
write("virtqueue", "many-iovecs-indirect", vq_seed(
    8, [desc(R3, 16 * 210, F_INDIRECT)], [0], features=INDIRECT,
    r3=(b"".join(desc(R3, 0x1400, F_NEXT, i + 1) for i in range(209)) +
        desc(R3, 0x1400)).ljust(0x1000, b"\0")))
write("virtqueue", "hold-all-over-move", vq_seed(
    2, [desc(R2 + 0x10 * i, 0x10, F_WRITE) for i in range(4)], [0, 1, 2, 3],
    features=HOLD, policy=0x1c, late_idx=8))
write("virtqueue", "custom-addresses", vq_seed(
    3, [desc(R2 + 0x1000, 8, F_WRITE)], [0], features=EVENT_IDX,
    addrs=(R2, R2 + 0x800, R2 + 0x1000 - 0x100)))
write("virtqueue", "bad-chains", vq_seed(
    2, [desc(R2, 16, F_NEXT, 0), desc(0x5000, 16), desc(R2, 16, F_INDIRECT),
        desc(R2, 16, F_WRITE | F_NEXT, 0)], [0, 1, 2, 3], late_idx=0x8000))

# ---- fuzz_vhost_user: config byte, then records ------------------------

MEM_GPA, MEM_UVA = 0x40000000, 0x7f1200000000
VERSION, NEED_REPLY = 1, 8
(GET_FEATURES, SET_FEATURES, SET_OWNER, RESET_OWNER, SET_MEM_TABLE,
 SET_VRING_NUM, SET_VRING_ADDR, SET_VRING_BASE, GET_VRING_BASE,
 SET_VRING_KICK, SET_VRING_CALL, SET_VRING_ERR, GET_PROTOCOL_FEATURES,
 SET_PROTOCOL_FEATURES, GET_QUEUE_NUM, SET_VRING_ENABLE, SET_BACKEND_REQ_FD,
 GET_CONFIG, SET_CONFIG) = (1, 2, 3, 4, 5, 8, 9, 10, 11, 12, 13, 14, 15,
                            16, 17, 18, 21, 24, 25)
FEATURES = (1 << 32) | (1 << 29) | (1 << 28) | (1 << 1) | (1 << 30)
PROTO = (1 << 0) | (1 << 3) | (1 << 5) | (1 << 9)
KIND_EVENTFD, KIND_MEMFD, KIND_SOCKPAIR, KIND_SMALL = 0, 1, 2, 3


def msg(req, payload=b"", flags=VERSION):
    return struct.pack("<III", req, flags, len(payload)) + payload


def send(data, nfds=0, kind=0, pump=True):
    c = nfds | kind << 4 | (0 if pump else 0x40)
    return struct.pack("<BH", c, len(data)) + data


def guest(off, data):
    return struct.pack("<BHB", 0x80, off, len(data)) + data


KICK, TIMERS, CLOSE_KEPT, PUMP = b"\x81", b"\x82", b"\x87", b"\x88"


def size_op(b):
    return struct.pack("<BB", 0x83, b)


def u64(v):
    return struct.pack("<Q", v)


def state(i, n):
    return struct.pack("<II", i, n)


def mem_table(regions, uml=True):
    out = struct.pack("<II", len(regions), 0)
    for r in regions:
        out += struct.pack("<QQQQ", *r)
    slots = max(2 if uml else 8, len(regions))
    return out.ljust(8 + 32 * slots, b"\0")


def ring_addr(q, base_off):
    uva = MEM_UVA + base_off
    return struct.pack("<IIQQQQ", q, 0, uva, uva + 0x400, uva + 0x200, 0)


def handshake():
    return (send(msg(GET_FEATURES)) +
            send(msg(SET_FEATURES, u64(FEATURES), VERSION | NEED_REPLY)) +
            send(msg(GET_PROTOCOL_FEATURES)) +
            send(msg(SET_PROTOCOL_FEATURES, u64(PROTO), VERSION | NEED_REPLY)) +
            send(msg(GET_QUEUE_NUM)) +
            send(msg(SET_OWNER)) +
            send(msg(SET_MEM_TABLE,
                     mem_table([(MEM_GPA, 0x10000, MEM_UVA, 0)]),
                     VERSION | NEED_REPLY), 1, KIND_MEMFD))


def ring(q, off, kick=KIND_EVENTFD, call=KIND_EVENTFD, err=KIND_SOCKPAIR,
         enable=True):
    out = (send(msg(SET_VRING_NUM, state(q, 8))) +
           send(msg(SET_VRING_BASE, state(q, 0))) +
           send(msg(SET_VRING_ADDR, ring_addr(q, off))) +
           send(msg(SET_VRING_CALL, u64(q)), 1, call) +
           send(msg(SET_VRING_ERR, u64(q)), 1, err) +
           send(msg(SET_VRING_KICK, u64(q)), 1, kick))
    if enable:
        out += send(msg(SET_VRING_ENABLE, state(q, 1), VERSION | NEED_REPLY))
    return out


def post_chain(off, data_gpa, n=1):
    """One writable descriptor per chain at ring offset off."""
    out = b""
    for i in range(n):
        out += guest(off + 16 * i,
                     struct.pack("<QIHH", data_gpa + 0x100 * i, 64, 2, 0))
    avail = struct.pack("<HH", 0, n) + struct.pack("<%dH" % n, *range(n))
    return out + guest(off + 0x200, avail)


CFG = 0x20 | 3  # four queues, the device drains them
write("vhost_user", "handshake-one-ring", bytes([CFG]) + handshake() +
      ring(0, 0) + post_chain(0, MEM_GPA + 0x8000, 2) + KICK + TIMERS +
      send(msg(GET_CONFIG, struct.pack("<III", 0, 12, 0) + bytes(12))) +
      send(msg(SET_CONFIG, struct.pack("<III", 0, 4, 0) + b"\x50\0\x19\0",
               VERSION | NEED_REPLY)) +
      send(msg(GET_VRING_BASE, state(0, 0))))
write("vhost_user", "two-rings-lazy-eof", bytes([CFG | 0x40 | 0x10]) +
      handshake() + ring(0, 0) + ring(1, 0x800, kick=KIND_SOCKPAIR,
                                      call=KIND_SOCKPAIR) +
      post_chain(0x800, MEM_GPA + 0x8000, 3) + KICK + TIMERS + KICK +
      TIMERS + CLOSE_KEPT + post_chain(0x800, MEM_GPA + 0x9000, 4) + PUMP)
write("vhost_user", "no-protocol-features", bytes([0x80 | 0x20 | 1]) +
      send(msg(GET_FEATURES)) +
      send(msg(SET_FEATURES, u64((1 << 32) | (1 << 1)))) +
      send(msg(SET_MEM_TABLE, mem_table([(MEM_GPA, 0x10000, MEM_UVA, 0)],
                                        uml=False)), 1, KIND_MEMFD) +
      ring(0, 0, enable=False) + post_chain(0, MEM_GPA + 0x4000) + KICK)
write("vhost_user", "memory-shrinks", bytes([CFG]) + handshake() +
      ring(0, 0) + ring(1, 0x800, enable=False) + size_op(0) +
      send(msg(SET_VRING_ENABLE, state(1, 1), VERSION | NEED_REPLY)) +
      PUMP + size_op(255))
write("vhost_user", "reset-backend-split", bytes([CFG]) + handshake() +
      send(msg(SET_BACKEND_REQ_FD), 1, KIND_SOCKPAIR) + ring(0, 0) +
      send(msg(RESET_OWNER)[:5], pump=False) + send(msg(RESET_OWNER)[5:]) +
      send(msg(SET_MEM_TABLE, mem_table([(MEM_GPA, 0x1000, MEM_UVA, 0),
                                         (MEM_GPA + 0x1000, 0x1000,
                                          MEM_UVA + 0x1000, 0)])),
           2, KIND_SMALL) +
      send(msg(GET_FEATURES), 12, KIND_EVENTFD) +
      b"\x86" + b"\x84" + handshake())
write("vhost_user", "bad-version", bytes([1]) +
      send(struct.pack("<III", GET_FEATURES, 2, 0)) + b"\x84" +
      send(msg(GET_FEATURES)) + b"\x85" + b"\x84" + send(msg(99)))


# Malformed frontend messages (test_vhost_user.c, "the contract"): each is
# refused, and the session goes on.
def region(gpa, size, uva, off=0):
    return (gpa, size, uva, off)


def raw_mem_table(regions, slots=2):
    out = struct.pack("<II", len(regions), 0)
    for r in regions:
        out += struct.pack("<QQQQ", *r)
    return out.ljust(8 + 32 * slots, b"\0")


write("vhost_user", "malformed-sizes", bytes([CFG]) + handshake() +
      send(msg(SET_FEATURES, u64(FEATURES) + bytes(4), VERSION | NEED_REPLY)) +
      send(msg(SET_VRING_NUM, state(0, 8)[:4], VERSION | NEED_REPLY)) +
      send(msg(SET_VRING_ADDR, ring_addr(0, 0)[:39], VERSION | NEED_REPLY)) +
      send(msg(SET_MEM_TABLE, mem_table([(MEM_GPA, 0x10000, MEM_UVA, 0)])[:41],
               VERSION | NEED_REPLY), 1, KIND_MEMFD) +
      send(msg(SET_CONFIG, struct.pack("<III", 0, 4, 0) + bytes(8),
               VERSION | NEED_REPLY)) +
      send(msg(GET_CONFIG, struct.pack("<III", 0, 12, 0))) +
      send(msg(SET_OWNER, u64(0), VERSION | NEED_REPLY)) +
      send(msg(SET_FEATURES, u64(FEATURES), VERSION | NEED_REPLY), 1) +
      send(msg(SET_VRING_KICK, u64(0)), 2) +
      send(msg(SET_VRING_CALL, u64(0x100)), 1) +
      ring(0, 0) + post_chain(0, MEM_GPA + 0x8000, 2) + KICK +
      # A GET with a payload cannot be answered: the connection ends.
      send(msg(GET_FEATURES, u64(0))) + b"\x84" + handshake() + ring(0, 0))
write("vhost_user", "bad-regions", bytes([CFG]) + handshake() + ring(0, 0) +
      send(msg(SET_MEM_TABLE, raw_mem_table(
          [region(MEM_GPA, 0x8000, MEM_UVA),
           region(MEM_GPA + 0x4000, 0x8000, MEM_UVA + 0x8000, 0x8000)]),
          VERSION | NEED_REPLY), 2, KIND_MEMFD) +
      send(msg(SET_MEM_TABLE, raw_mem_table(
          [region(MEM_GPA, 0x10000, MEM_UVA),
           region(2**64 - 0x1000, 0x2000, MEM_UVA + 0x100000)]),
          VERSION | NEED_REPLY), 2, KIND_MEMFD) +
      send(msg(SET_MEM_TABLE, raw_mem_table(
          [region(MEM_GPA, 0x10000, MEM_UVA + 0x100000)]),
          VERSION | NEED_REPLY), 1, KIND_MEMFD) +
      send(msg(SET_MEM_TABLE, raw_mem_table(
          [region(MEM_GPA, 0x8000, MEM_UVA),
           region(MEM_GPA + 0x8000, 0x8000, MEM_UVA + 0x8000, 0x8000)]),
          VERSION | NEED_REPLY), 2, KIND_MEMFD) +
      post_chain(0, MEM_GPA + 0x9000, 2) + KICK)
write("vhost_user", "out-of-order", bytes([CFG]) +
      send(msg(SET_VRING_ENABLE, state(0, 1), VERSION | NEED_REPLY)) +
      send(msg(SET_VRING_KICK, u64(1)), 1, KIND_EVENTFD) +
      send(msg(SET_VRING_ADDR, ring_addr(1, 0x800), VERSION | NEED_REPLY)) +
      handshake() + ring(0, 0) +
      # Features and protocol features changed under a running ring.
      send(msg(SET_FEATURES, u64(FEATURES & ~(1 << 29)),
               VERSION | NEED_REPLY)) +
      send(msg(SET_PROTOCOL_FEATURES, u64(1 << 3), VERSION | NEED_REPLY)) +
      send(msg(SET_VRING_NUM, state(0, 16), VERSION | NEED_REPLY)) +
      send(msg(SET_VRING_ENABLE, state(0, 0), VERSION | NEED_REPLY)) +
      send(msg(SET_MEM_TABLE, mem_table([(MEM_GPA, 0x10000, MEM_UVA, 0)]),
               VERSION | NEED_REPLY), 1, KIND_MEMFD) +
      send(msg(SET_VRING_NUM, state(0, 256), VERSION | NEED_REPLY)) +
      send(msg(SET_VRING_ENABLE, state(0, 1), VERSION | NEED_REPLY)) +
      send(msg(SET_VRING_NUM, state(0, 8), VERSION | NEED_REPLY)) +
      send(msg(SET_VRING_ADDR, struct.pack("<IIQQQQ", 0, 0, MEM_UVA + 8,
                                           MEM_UVA + 0x400, MEM_UVA + 0x201,
                                           0), VERSION | NEED_REPLY)) +
      send(msg(SET_VRING_ENABLE, state(0, 1), VERSION | NEED_REPLY)) +
      post_chain(0, MEM_GPA + 0x8000, 1) + KICK +
      send(msg(GET_VRING_BASE, state(200, 0))))
