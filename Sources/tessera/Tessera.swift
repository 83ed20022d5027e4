// The `tessera` command: one subcommand per verb of DESIGN.md's command line. Verbs appear here
// as they are built; none is listed before it works.
import ArgumentParser

struct Tessera: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tessera",
        abstract: "A small text-to-image generator of the DALL-E family that trains and runs on a CPU.",
        subcommands: [Generate.self, Complete.self, Dataset.self, Train.self, Tokens.self, Decode.self, Codebook.self, Evaluate.self, Compare.self, Bench.self])
}
