#!/bin/sh
# Runs inside the demo's UML guest: small services on the virtio ports, so
# the host can play with the mounted port files.
#   org.qemu.guest_agent.0  answers every line it reads, upper-cased
#   data                    gets a line with the guest's uptime every second
#   console0 (/dev/hvc0)    gets a greeting
agent=/dev/virtio-ports/org.qemu.guest_agent.0
data=/dev/virtio-ports/data

echo "vportfs demo guest up: $(uname -sr)" > /dev/hvc0

# A guest port admits one open at a time, so one descriptor serves both
# directions.  A guest read returns EOF while no host program has the port
# open: wait a little and try again instead of spinning.
(
	while :; do
		exec 3<>"$agent"
		while IFS= read -r line <&3; do
			printf 'guest says: %s\n' "$line" | tr 'a-z' 'A-Z' >&3
		done
		exec 3<&-
		sleep 0.2
	done
) &

# Kept open: a host reader sees a stream, not EOF between lines.  A guest
# write blocks while no host program has the port open.
exec 4>"$data"
while :; do
	echo "guest uptime: $(cut -d' ' -f1 /proc/uptime)s" >&4
	sleep 1
done
