#!/bin/sh
# SPDX-License-Identifier: MIT
#
# mkcert.sh DIR: make throw-away TLS material for the Drive emulator's tests.
# Writes into DIR (created if missing), all EC P-256, valid for 30 days:
#   ca.pem ca.key             test CA that signed the server certificate
#   server.pem server.key     leaf for 127.0.0.1, ::1 and localhost (SAN IP+DNS)
#   server-chain.pem          server.pem followed by ca.pem
#   other-ca.pem other-ca.key an unrelated CA: a client trusting only it must fail
set -eu

if [ $# -ne 1 ]; then
	echo "usage: $0 DIR" >&2
	exit 2
fi
dir=$1
mkdir -p "$dir"
cd "$dir"
umask 077

mkca() { # name subject
	openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-keyout "$1.key" -out "$1.pem" -days 30 -subj "$2" \
		-addext "basicConstraints=critical,CA:TRUE" \
		-addext "keyUsage=critical,keyCertSign,cRLSign" \
		-addext "subjectKeyIdentifier=hash" 2>/dev/null
}

mkca ca "/CN=gdroot gdrive-emu test CA"
mkca other-ca "/CN=gdroot unrelated test CA"

openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
	-keyout server.key -out server.csr -subj "/CN=localhost" 2>/dev/null
cat > server.ext <<EXT
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid
EXT
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
	-out server.pem -days 30 -extfile server.ext 2>/dev/null
cat server.pem ca.pem > server-chain.pem
rm -f server.csr server.ext ca.srl
chmod 644 ./*.pem
