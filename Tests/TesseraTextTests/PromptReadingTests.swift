// How a model reads prompts: measured on its training captions, a leading article is dropped
// only for models whose captions (nearly) never have one, and their own exceptions stay whole.
import Testing
import TesseraText

@Suite struct PromptReadingTests {
    @Test func measuredOnTheCaptions() throws {
        var emoji = (0..<200).map { "emoji name \($0)" }
        emoji.append("a button (blood type)")
        let reading = try #require(PromptReading(captions: emoji + emoji))
        #expect(reading == PromptReading(dropsLeadingArticle: true, kept: ["a button (blood type)"]))
        // Shapes captions all begin with "a": prompts are read as they are.
        #expect(PromptReading(captions: ["a small red circle at the top", "a large blue square in the center"]) == nil)
        // Two articled captions in a hundred are too many.
        #expect(PromptReading(captions: (0..<98).map { "name \($0)" } + ["the moon", "an ant"]) == nil)
        #expect(PromptReading(captions: [String]()) == nil)
    }

    @Test func dropsOnlyALeadingArticleWord() {
        let reading = PromptReading(dropsLeadingArticle: true, kept: ["a button (blood type)"])
        #expect(reading.read("a red apple") == "red apple")
        #expect(reading.read("an apple") == "apple")
        #expect(reading.read("the rocket") == "rocket")
        #expect(reading.read("a button (blood type)") == "a button (blood type)")
        #expect(reading.read("ant farm") == "ant farm")
        #expect(reading.read("a") == "a")
        #expect(reading.read("red apple") == "red apple")
        #expect(reading.read("rocket the") == "rocket the")
        #expect(PromptReading(dropsLeadingArticle: false).read("a red apple") == "a red apple")
    }
}
