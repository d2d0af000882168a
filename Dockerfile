# certkeeper's container image for those who build with a daemon (docker build -t certkeeper:0.1.0 .).
# scripts/image builds the same image without one (README.md, "Container image"); keep the two
# equivalent: crates/certkeeper/tests/image.rs compares this file's USER, ENTRYPOINT, CMD and
# EXPOSE with the script's configuration.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p certkeeper \
 && mkdir -p /rootfs/usr/bin /rootfs/etc/ssl/certs /rootfs/tmp /rootfs/home/nonroot \
 && install -m 0755 target/release/certkeeper /rootfs/usr/bin/certkeeper \
 && strip --strip-unneeded --remove-section=.comment --remove-section=.note /rootfs/usr/bin/certkeeper \
 && ldd target/release/certkeeper | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' | sort -u \
    | while read -r lib; do mkdir -p "/rootfs$(dirname "$lib")" && cp -L "$lib" "/rootfs$lib"; done \
 && install -m 0644 /etc/ssl/certs/ca-certificates.crt /rootfs/etc/ssl/certs/ca-certificates.crt \
 && printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >/rootfs/etc/passwd \
 && printf 'root:x:0:\nnonroot:x:65532:\n' >/rootfs/etc/group \
 && printf 'hosts: files dns\n' >/rootfs/etc/nsswitch.conf \
 && chmod 1777 /rootfs/tmp && chown 65532:65532 /rootfs/home/nonroot

FROM scratch
COPY --from=build /rootfs/ /
LABEL org.opencontainers.image.title=certkeeper \
      org.opencontainers.image.description="Certificate manager for Vault/OpenBao PKI speaking cert-manager's API" \
      org.opencontainers.image.version=0.1.0 \
      org.opencontainers.image.licenses=Apache-2.0
ENV PATH=/usr/bin SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
WORKDIR /home/nonroot
USER 65532:65532
EXPOSE 9402/tcp
ENTRYPOINT ["/usr/bin/certkeeper"]
CMD ["controller"]
