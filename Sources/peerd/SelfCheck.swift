import ArgumentParser
import CALSA
import COpenSSL
import COpus
import CShims
import CSRTP

/// `peerd selfcheck`: loads each C library and makes one real call into it.
struct SelfCheck: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "selfcheck",
        abstract: "Check that the C libraries peerd uses (OpenSSL, libsrtp2, libopus, ALSA) load and work.",
        discussion: "Example: peerd selfcheck"
    )

    func run() async throws {
        var failures = 0
        func report(_ name: String, _ ok: Bool, _ detail: String) {
            print("\(ok ? "ok  " : "FAIL") \(name + String(repeating: " ", count: max(0, 10 - name.count))) \(detail)")
            if !ok { failures += 1 }
        }

        // OpenSSL: version and an HMAC-SHA1 over a known input (RFC 2202 test case 2).
        let key = Array("Jefe".utf8)
        let data = Array("what do ya want for nothing?".utf8)
        var mac = [UInt8](repeating: 0, count: 20)
        var macLength: UInt32 = 0
        _ = HMAC(EVP_sha1(), key, Int32(key.count), data, data.count, &mac, &macLength)
        let hex = mac.map { String($0, radix: 16).leftPadded(to: 2) }.joined()
        report("OpenSSL", hex == "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79", String(cString: peerd_openssl_version()))

        // libsrtp2: init and version.
        let status = srtp_init()
        report("libsrtp2", status == srtp_err_status_ok, String(cString: srtp_get_version_string()))

        // libopus: encode and decode one 20 ms frame.
        var error: Int32 = 0
        var opusOK = false
        if let encoder = opus_encoder_create(48_000, 1, OPUS_APPLICATION_VOIP, &error),
           let decoder = opus_decoder_create(48_000, 1, &error) {
            let pcm = [Int16](repeating: 0, count: 960)
            var packet = [UInt8](repeating: 0, count: 400)
            let length = opus_encode(encoder, pcm, 960, &packet, 400)
            var out = [Int16](repeating: 0, count: 960)
            let decoded = length > 0 ? opus_decode(decoder, packet, length, &out, 960, 0) : -1
            opusOK = decoded == 960
            opus_encoder_destroy(encoder)
            opus_decoder_destroy(decoder)
        }
        report("libopus", opusOK, String(cString: opus_get_version_string()))

        // ALSA: library version, and the `null` PCM opens (no sound card is needed).
        peerd_alsa_silence_errors()
        var pcm: OpaquePointer?
        let openResult = snd_pcm_open(&pcm, "null", SND_PCM_STREAM_PLAYBACK, 0)
        if let pcm { snd_pcm_close(pcm) }
        report("ALSA", openResult == 0, "alsa-lib \(String(cString: snd_asoundlib_version()))")

        if failures > 0 { throw ExitCode(1) }
        print("all C libraries work")
    }
}

extension String {
    func leftPadded(to width: Int, with pad: Character = "0") -> String {
        count >= width ? self : String(repeating: pad, count: width - count) + self
    }
}
