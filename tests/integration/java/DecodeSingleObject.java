// Decodes one Avro single-object encoded record with Apache Avro's Java implementation.
// Usage: java -cp 'avro/*' DecodeSingleObject.java record.bin dependency.avsc... schema.avsc
// The last schema is the record's; the ones before it define the types it names.
import java.io.File;
import java.nio.file.Files;
import java.nio.file.Path;
import org.apache.avro.Schema;
import org.apache.avro.generic.GenericData;
import org.apache.avro.generic.GenericRecord;
import org.apache.avro.message.BinaryMessageDecoder;

public class DecodeSingleObject {
    public static void main(String[] args) throws Exception {
        Schema.Parser parser = new Schema.Parser();
        Schema schema = null;
        for (int i = 1; i < args.length; i++) {
            schema = parser.parse(new File(args[i]));
        }
        BinaryMessageDecoder<GenericRecord> decoder =
            new BinaryMessageDecoder<>(GenericData.get(), schema);
        GenericRecord record = decoder.decode(Files.readAllBytes(Path.of(args[0])));
        System.out.println(GenericData.get().toString(record));
    }
}
