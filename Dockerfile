# dedupfn server image. Example only: no Docker engine runs in our CI.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -o /out/dedupfn ./cmd/dedupfn \
 && GOOS=wasip1 GOARCH=wasm go build -trimpath -o /out/thumbnail.wasm ./examples/thumbnail

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/dedupfn /usr/local/bin/dedupfn
COPY --from=build /out/thumbnail.wasm /opt/dedupfn/thumbnail.wasm
USER nonroot
ENTRYPOINT ["/usr/local/bin/dedupfn"]
CMD ["serve", "--data", "/var/lib/dedupfn", "--api-addr", "0.0.0.0:8080"]
