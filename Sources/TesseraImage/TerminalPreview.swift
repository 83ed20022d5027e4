// A picture in the terminal: 24-bit ANSI colour with the upper half block "▀", whose foreground
// is one pixel and background the pixel below, so each character cell shows two pixels.
import Foundation

public enum TerminalPreview {
    /// The terminal's size in character cells (from the terminal, else $COLUMNS/$LINES, else 80×24).
    public static func terminalSize() -> (columns: Int, rows: Int) {
        var size = winsize()
        if ioctl(STDOUT_FILENO, UInt(TIOCGWINSZ), &size) == 0, size.ws_col > 0, size.ws_row > 0 {
            return (Int(size.ws_col), Int(size.ws_row))
        }
        let environment = ProcessInfo.processInfo.environment
        return (environment["COLUMNS"].flatMap(Int.init) ?? 80, environment["LINES"].flatMap(Int.init) ?? 24)
    }

    /// The image as lines of escape sequences, scaled (keeping its aspect) to at most
    /// `columns` characters wide and `rows` lines tall.
    public static func render(_ image: Image, columns: Int, rows: Int) -> String {
        let picture = image.flattened()
        let scale = min(Double(max(1, columns)) / Double(picture.width),
                        Double(max(1, 2 * rows)) / Double(picture.height))
        let width = max(1, Int(Double(picture.width) * scale))
        let height = max(2, Int(Double(picture.height) * scale))
        let fitted = picture.resized(width: width, height: height)
        var text = ""
        for y in stride(from: 0, to: height, by: 2) {
            for x in 0..<width {
                let top = fitted[x, y].map(String.init).joined(separator: ";")
                let bottom = y + 1 < height ? fitted[x, y + 1].map(String.init).joined(separator: ";") : nil
                text += "\u{1B}[38;2;\(top)m" + (bottom.map { "\u{1B}[48;2;\($0)m" } ?? "\u{1B}[49m") + "▀"
            }
            text += "\u{1B}[0m\n"
        }
        return text
    }
}
