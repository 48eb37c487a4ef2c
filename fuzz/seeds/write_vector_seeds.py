#!/usr/bin/env python3
"""Writes the seed corpora of the codec, parser and HTTP-side harnesses from the vectors the
unit tests already use (hex("...") byte vectors, R"(...)" JSON texts, the example
configuration), in the input layout each harness reads. The driver and simulated-meter
corpora come from write_seeds.cpp instead. Run from the repository root after the vectors
change:

    python3 fuzz/seeds/write_vector_seeds.py
"""
import hashlib
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[2]
CORPUS = ROOT / "fuzz" / "corpus"


def write(harness, data):
    d = CORPUS / harness
    d.mkdir(parents=True, exist_ok=True)
    (d / hashlib.sha1(data).hexdigest()[:16]).write_bytes(data)


class Provider:
    """An input laid out as libFuzzer's FuzzedDataProvider reads it: strings from the front
    (a backslash followed by another byte ends one), integers from the back."""

    def __init__(self):
        self.front = b""
        self.back = b""

    def integer(self, value, range_):
        n = 0
        while n < 8 and (range_ >> (8 * n)) > 0:
            n += 1
        self.back += value.to_bytes(n, "big") if n else b""
        return self

    def string(self, s):
        self.front += s.replace(b"\\", b"\\\\") + b"\\ "
        return self

    def bytes(self):
        return self.front + self.back[::-1]


def test_text(name):
    return (ROOT / "tests" / "unit" / name).read_text(encoding="utf-8")


def hex_vectors(name):
    out = []
    for h in re.findall(r'hex\("([0-9A-Fa-f ]*)"\)', test_text(name)):
        digits = h.replace(" ", "")
        if digits and len(digits) % 2 == 0:
            out.append(bytes.fromhex(digits))
    return out


def raw_strings(name):
    return [s.encode() for s in re.findall(r'R"\((.*?)\)"', test_text(name), re.S)]


# JSON and validation: the bodies of the json and validation tests.
bodies = raw_strings("json_test.cpp") + raw_strings("validation_test.cpp")
for body in bodies:
    write("json", body)
queries = [b"", b"testId=1", b"batchId=12", b"fromTime=2023-11-14T00:00:00Z&toTime=2023-11-15T00:00:00Z&status=ALL&limit=10&offset=0&reverseOrder=true",
           b"meterType=DLMS&remoteAddress=127.0.0.1%3A4059", b"testId=1&testId=2", b"deleteCompleted=true&batchId=3"]
for method in range(8):
    for q in queries:
        write("validation", bytes([method]) + q)
    for body in bodies[:40]:
        write("validation", bytes([method]) + b"\0" + body)

# Headers: authorization, peer, X-Real-IP, X-Forwarded-For, trusted networks.
for fields in [[b"Bearer abcdef0123456789", b"127.0.0.1", b"", b"203.0.113.7, 10.0.0.2", b"127.0.0.1, 10.0.0.0/8"],
               [b"bearer  x", b"::1", b"2001:db8::1", b"", b"::1, fd00::/8"],
               [b"Basic dXNlcg==", b"10.1.2.3", b"not-an-ip", b"1.2.3.4", b"10.0.0.0/8"]]:
    write("auth_headers", b"\0".join(fields))

# Configuration: the example file, and overrides.
example = (ROOT / "config" / "mts.example.toml").read_bytes()
write("config", example)
write("config", b"[http]\nport = 8443\n\0http.threads=4\0scheduler.overnight_window=00:00-06:00")
write("config", b'[[meter_type]]\nname = "A"\ndriver = "dlms"\ntransport = "hdlc"\n')

# IEC 62056-21 frames: vdew time, limit, then (bool, chunk) pairs.
iec_messages = [b"/?1!\r\n", b"/SIM5MTS-SIM\r\n", b"\x06050\r\n", b"\x01P0\x02(12345678)\x03\x60", b"\x01R1\x020.9.1()\x03\x1b",
                b"\x02(12:00:00)\x03\x0e", b"\x06", b"\x15", b"\x01B0\x03\x71", b"\x02P.01(2311140000)(00)(30)(1)(1.8.0)(kWh)\r\n(0.5)\x04\x11"]
p = Provider().string(b"2311141200").integer(2048 - 16, 2032)
for m in iec_messages:
    p.integer(0, 255).string(m)
write("iec_frames", p.bytes())

# Elster codec: selector, two channel-mask bytes, data.
for v in hex_vectors("elster_codec_test.cpp"):
    for selector in range(8):
        write("elster_codec", bytes([selector, 0x77, 0x07]) + v)

# Character formats and parity: selector, then text/bytes.
for text in [b"7E1", b"8N1", b"7O1", b"8E1", b"7E1\xb0\x31\x82"]:
    for selector in range(5):
        write("char_format", bytes([selector]) + text)

# Transcripts: secret NUL bytes.
for t in [b"12345678\0\x01P1\x02(12345678)\x03\x61", b"abcd\0xxabcdxx\xe1bcd", b"pass\0\x01P2\x02(00000000)\x03\x62"]:
    write("transcript", t)

# DLMS: every vector of the codec, link and driver tests, to every decoder.
apdu_selector = {0x60: 0, 0x61: 1, 0xC0: 2, 0xC4: 3, 0xC3: 4, 0xC7: 5, 0x05: 6, 0x0C: 7, 0x06: 8, 0x0D: 9, 0xD8: 10, 0x0E: 11}
vectors = hex_vectors("dlms_codec_test.cpp") + hex_vectors("dlms_link_test.cpp") + hex_vectors("dlms_driver_test.cpp")
for v in vectors:
    if v[0] in apdu_selector:
        write("dlms_apdu", bytes([apdu_selector[v[0]]]) + v)
    if len(v) == 12:
        write("dlms_axdr", bytes([0]) + v)
    write("dlms_axdr", bytes([2]) + v)
    if v[0] == 0x7E or v[:2] == b"\x00\x01":
        # hdlc_frame_parser (case 0); the client links (2, 3) and server links (4, 5).
        write("dlms_link", Provider().integer(0, 2).integer(0, 5).string(v).bytes())
        write("dlms_link", Provider().integer(0, 2).integer(1, 5).string(v[4:-3]).bytes())
        for case in (2, 3):
            write("dlms_link", Provider().integer(0, 2).integer(case, 5).integer(3, 7).string(v).bytes())
        for case in (4, 5):
            write("dlms_link", Provider().integer(0, 2).integer(case, 5).integer(1, 5).string(v).bytes())
for text in [b"1.0.1.8.0.255", b"1-0:1.8.0", b"0.0.96.1.0.255"]:
    write("dlms_axdr", bytes([1]) + text)

# The AT modem dialogue around the IEC driver: number, options, an empty session request,
# then the modem's answers as driver_script events (delta, opcode, payload).
TIMER, BYTES = 0, 4
for connect in [b"CONNECT 9600\r\n", b"1\r", b"BUSY\r\n", b"NO CARRIER\r\n", b"ERROR\r\n"]:
    p = Provider().string(b"01234567")
    for flag in (True, True, False):  # "9," prefix, AT+CBST, 8N1
        p.integer(int(flag), 255)
    for present in (False, False, False, False, False):  # address, password, serial, survey, over_modem
        p.integer(int(present), 255)
    events = [(TIMER, None), (TIMER, None), (BYTES, b"+++ATH\r\r\nOK\r\n"), (BYTES, b"OK\r\n"), (BYTES, b"OK\r\n"),
              (BYTES, b"OK\r\n"), (BYTES, connect), (BYTES, b"/SIM5MTS-SIM\r\n"), (TIMER, None), (BYTES, b"\x01P0\x02(12345678)\x03\x60"),
              (BYTES, b"\x06"), (BYTES, b"NO CARRIER\r\n"), (TIMER, None), (BYTES, b"OK\r\n")]
    for op, payload in events:
        p.integer(100, 3000).integer(op, 9)
        if payload is not None:
            p.string(payload)
    write("at_modem", p.bytes())
