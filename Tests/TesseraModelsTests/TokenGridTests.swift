// Token grids as text: the format of DESIGN.md written and read back, and every malformed
// grid refused with the line it went wrong on.
import Testing
import TesseraModels
import TesseraTensor

@Suite struct TokenGridText {
    let grid = TokenGrid(height: 2, width: 3, codebookSize: 512, tokens: [12, 431, 7, 0, 511, 99])

    @Test func textIsRightAlignedWithHeaderComments() {
        #expect(grid.text(modelName: "shapes") == """
            # tessera token grid v1
            # model: shapes  grid: 2x3  codebook: 512
             12 431   7
              0 511  99

            """)
        #expect(grid.json() == "{\"grid\":[2,3],\"codebook\":512,\"tokens\":[[12,431,7],[0,511,99]]}\n")
    }

    @Test func textReadsBack() throws {
        let parsed = try TokenGrid.parse(grid.text(modelName: "x"), path: "g.txt", height: 2, width: 3, codebookSize: 512)
        #expect(parsed == grid)
        let loose = "# any comment\n\n 12\t431 7   # trailing comment\n0 511 99\n"
        #expect(try TokenGrid.parse(loose, path: "g.txt", height: 2, width: 3, codebookSize: 512) == grid)
    }

    @Test(arguments: [
        ("1 2 3\n4 5\n", "g.txt: line 2: row 2 has 2 ids, the grid is 3 wide"),
        ("1 2 3\n4 5 512\n", "g.txt: line 2: token 512 is outside the codebook (0…511)"),
        ("# c\n1 2 -1\n4 5 6\n", "g.txt: line 2: token -1 is outside the codebook (0…511)"),
        ("1 2 3\n", "g.txt: has 1 rows of tokens, the grid needs 2"),
        ("1 2 3\n4 5 6\n7 8 9\n", "g.txt: line 3: row 3, but the grid has only 2 rows"),
        ("1 2 x3\n4 5 6\n", "g.txt: line 1: 'x3' is not a token id"),
        ("", "g.txt: has 0 rows of tokens, the grid needs 2"),
    ])
    func malformedGridsNameTheLine(text: String, message: String) {
        do {
            _ = try TokenGrid.parse(text, path: "g.txt", height: 2, width: 3, codebookSize: 512)
            Issue.record("accepted: \(text)")
        } catch let error as TesseraError {
            #expect(error.description == message)
        } catch {
            Issue.record("unexpected \(error)")
        }
    }
}
